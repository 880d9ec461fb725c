"""Open Inference Protocol tensors ↔ NumPy arrays, in JSON and in the binary extension.

The binary tensor data extension: the body is a JSON header followed by raw little-endian
tensors; ``Inference-Header-Content-Length`` gives the JSON's length; each binary input says
its byte size in ``parameters.binary_data_size``; BYTES elements are prefixed by a 4-byte
little-endian length.

Every request is decoded within two bounds (server settings, see settings.py): the number of
tensor elements (counted from the declared shapes before anything is allocated for them, and
as values in the JSON before it is parsed) and the nesting depth (tensor dimensions, nested
``data``, and the JSON the response echoes back). Nothing here recurses over client data.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from dockyard.errors import DockyardError, PayloadTooLarge
from dockyard.serving.limits import MAX_DEPTH as DEFAULT_MAX_DEPTH
from dockyard.serving.limits import MAX_ELEMENTS as DEFAULT_MAX_ELEMENTS

Array = np.ndarray[Any, Any]

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
STRUCTURE_VALUES = 1024
_NARROW_FLOAT = {"FP16", "FP32"}
_INTEGER = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}


class TensorError(DockyardError, ValueError):
    """A tensor in a request does not match what the protocol or the model expects."""

    code = "invalid-tensor"
    status = 400


def datatype_of(dtype: np.dtype[Any]) -> str:
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    for name, dt in DATATYPES.items():
        if dt == dtype.newbyteorder("<") or dt == dtype:
            return name
    raise TensorError(f"no protocol datatype for {dtype}")


@dataclass
class InferInput:
    name: str
    datatype: str
    shape: list[int]
    data: Array
    parameters: dict[str, Any] | None = None


@dataclass
class InferRequest:
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)  # requested names; [] = model default
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False

    def wants_binary(self, name: str) -> bool:
        return name in self.binary_outputs or self.binary_default


def _check_shape(
    name: str,
    shape: Any,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> int:
    """The number of elements of a valid ``shape`` (a list of integers ≥ 0)."""
    if type(shape) is not list:
        raise TensorError(
            f"input '{name}': 'shape' must be a list of integers ≥ 0, got {_short(shape)}"
        )
    for d in shape:
        if type(d) is not int or d < 0:  # (not bool, which is an int too)
            raise TensorError(
                f"input '{name}': 'shape' must be a list of integers ≥ 0, got {_short(shape)}"
            )
    if len(shape) > max_depth:
        raise TensorError(
            f"input '{name}': shape has {len(shape)} dimensions, more than the limit "
            f"{max_depth} (max_depth)"
        )
    count = math.prod(shape)
    if count > max_elements or (shape and max(shape) > max_elements):
        # a dimension past the limit is refused even when another one is 0: NumPy cannot
        # represent it, and no request needs it
        raise PayloadTooLarge(
            f"input '{name}': shape {_short(shape)} has more elements than the limit "
            f"{max_elements} per request (max_elements)"
        )
    return count


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"


def nesting(data: Any) -> int:
    """How deep ``data`` is nested along its first elements (ragged data fails later)."""
    depth = 0
    while isinstance(data, list):
        depth += 1
        if not data:
            break
        data = data[0]
    return depth


def check_depth(value: Any, limit: int, what: str) -> None:
    """Refuse JSON nested deeper than ``limit`` (iteratively: no recursion on client data)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            raise TensorError(f"{what} is nested more than {limit} levels deep (max_depth)")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def decode_json_data(
    name: str,
    datatype: str,
    shape: list[int],
    data: Any,
    max_depth: int = DEFAULT_MAX_DEPTH,
    expected: int | None = None,
) -> Array:
    """``data`` (nested or flat) as an array of ``shape`` (of ``expected`` elements)."""
    if expected is None:
        expected = math.prod(shape)
    if nesting(data) > max_depth:
        raise TensorError(
            f"input '{name}': data is nested more than {max_depth} levels deep (max_depth)"
        )
    try:
        if datatype == "BYTES":
            flat = _flatten(data, name, max_depth)
            array = np.empty(len(flat), dtype=object)
            array[:] = [x.encode() if isinstance(x, str) else x for x in flat]
        elif datatype == "BOOL":
            raw = np.asarray(data)
            if raw.dtype != np.bool_ and not (
                raw.dtype.kind in "iu" and bool(np.isin(raw, (0, 1)).all())
            ):
                raise TensorError(f"input '{name}': BOOL data must be true/false (or 0/1)")
            array = raw.astype(np.bool_)
        elif datatype in _INTEGER:
            raw = np.asarray(data)
            if raw.dtype.kind == "f" and any(
                isinstance(x, float) for x in _flatten(data, name, max_depth)
            ):
                if not bool(np.all(np.mod(raw, 1) == 0)):
                    raise TensorError(f"input '{name}': {datatype} data must be whole numbers")
                if raw.size and (
                    raw.min() < np.iinfo(DATATYPES[datatype]).min
                    or raw.max() > np.iinfo(DATATYPES[datatype]).max
                ):
                    raise TensorError(f"input '{name}': values do not fit {datatype}")
                array = raw.astype(DATATYPES[datatype])
            elif raw.dtype.kind in "iubfO" or not raw.size:
                # straight from the Python integers: out-of-range values raise OverflowError
                array = np.asarray(data, dtype=DATATYPES[datatype])
            else:
                raise TensorError(f"input '{name}': {datatype} data must be numbers")
        elif datatype in _NARROW_FLOAT:
            with np.errstate(over="raise"):  # 1e300 as FP32 is not infinity, it is an error
                array = np.asarray(data, dtype=DATATYPES[datatype])
        else:
            array = np.asarray(data, dtype=DATATYPES[datatype])
        if array.size != expected:
            raise TensorError(
                f"input '{name}': shape {shape} needs {expected} elements, got {array.size}"
            )
        return array.reshape(shape)
    except TensorError:
        raise
    except (ValueError, TypeError, OverflowError, FloatingPointError) as exc:
        raise TensorError(f"input '{name}': data does not fit datatype {datatype}: {exc}") from exc


def _flatten(data: Any, name: str = "", max_depth: int = DEFAULT_MAX_DEPTH) -> list[Any]:
    """The leaves of nested lists in order, without recursion, at most ``max_depth`` deep."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) >= max_depth:
                    raise TensorError(
                        f"input '{name}': data is nested more than {max_depth} levels deep "
                        "(max_depth)"
                    )
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def decode_bytes(buffer: memoryview, count: int, name: str) -> Array:
    """BYTES elements, each a 4-byte little-endian length then the bytes."""
    if count * 4 > len(buffer):  # before allocating anything for ``count`` elements
        raise TensorError(
            f"input '{name}': {count} BYTES elements need at least {count * 4} bytes, "
            f"got {len(buffer)}"
        )
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(buffer):
            raise TensorError(f"input '{name}': binary BYTES data ends early")
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + length > len(buffer):
            raise TensorError(f"input '{name}': binary BYTES element runs past the data")
        out[i] = bytes(buffer[offset : offset + length])
        offset += length
    if offset != len(buffer):
        raise TensorError(
            f"input '{name}': {len(buffer) - offset} extra bytes after {count} BYTES elements"
        )
    return out


def encode_bytes(array: Array) -> bytes:
    parts = []
    for x in array.ravel():
        raw = x if isinstance(x, bytes) else str(x).encode()
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_binary(name: str, datatype: str, shape: list[int], buffer: memoryview) -> Array:
    count = math.prod(shape)
    if datatype == "BYTES":
        return decode_bytes(buffer, count, name).reshape(shape)
    dtype = DATATYPES[datatype]
    if len(buffer) != count * dtype.itemsize:
        raise TensorError(
            f"input '{name}': shape {shape} of {datatype} needs "
            f"{count * dtype.itemsize} bytes, got {len(buffer)}"
        )
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def parse_json(head: bytes, max_elements: int) -> Any:
    """``orjson.loads``, refusing first a document with more values than ``max_elements``.

    Parsing builds one Python object per JSON value, so the values are counted (as the commas
    between them, an upper bound) before: what parsing allocates is bounded by the limit (plus
    ``STRUCTURE_VALUES`` for the request's own fields, so that a tensor of exactly
    ``max_elements`` passes here and is checked exactly against its shape).
    """
    if head.count(b",") > max_elements + STRUCTURE_VALUES:
        raise PayloadTooLarge(
            f"the request's JSON holds more than {max_elements} values, the limit of tensor "
            "elements per request (max_elements)"
        )
    try:
        return orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise TensorError(f"request body is not valid JSON: {exc}") from exc


def decode_request(
    body: bytes,
    header_length: int | None,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> InferRequest:
    """Parse a JSON or binary-extension inference request.

    Raises only ``DockyardError`` subclasses: ``TensorError`` (400) for anything malformed,
    ``PayloadTooLarge`` (413) past ``max_elements``.
    """
    if header_length is not None and not 0 < header_length <= len(body):
        raise TensorError(
            f"Inference-Header-Content-Length {header_length} does not fit a "
            f"body of {len(body)} bytes"
        )
    head = body if header_length is None else body[:header_length]
    request = parse_json(head, max_elements)
    if (
        not isinstance(request, dict)
        or not isinstance(request.get("inputs"), list)
        or not request["inputs"]
    ):
        raise TensorError("request must be a JSON object with a non-empty 'inputs' list")
    if request.get("id") is not None and not isinstance(request["id"], str):
        raise TensorError("'id' must be a string")
    parameters = request.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise TensorError("'parameters' must be an object")
        if parameters:  # echoed in the response: no deeper than it can be written
            check_depth(parameters, max_depth, "'parameters'")
    requested = request.get("outputs")
    if requested is not None and not isinstance(requested, list):
        raise TensorError("'outputs' must be a list of objects with a 'name'")
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    offset = 0
    elements = 0
    inputs = []
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise TensorError("each input must be an object with a 'name'")
        name = tensor["name"]
        datatype = tensor.get("datatype")
        if datatype not in DATATYPES:
            raise TensorError(
                f"input '{name}': unknown datatype {_short(repr(datatype))}; expected one of "
                f"{', '.join(DATATYPES)}"
            )
        shape: Any = tensor.get("shape")  # a list of integers once checked
        count = _check_shape(name, shape, max_elements, max_depth)
        elements += count
        if elements > max_elements:
            raise PayloadTooLarge(
                f"the request's tensors have more than {max_elements} elements, the limit "
                "per request (max_elements)"
            )
        params = tensor.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise TensorError(
                    f"input '{name}': binary_data_size {_short(size)} runs past the binary data"
                )
            data = decode_binary(name, datatype, shape, binary[offset : offset + size])
            offset += size
        elif "data" in tensor:
            data = decode_json_data(name, datatype, shape, tensor["data"], max_depth, count)
        else:
            raise TensorError(f"input '{name}': 'data' is missing")
        inputs.append(InferInput(name, datatype, shape, data, params or None))
    if offset != len(binary):
        raise TensorError(f"{len(binary) - offset} bytes of binary data belong to no input")
    out = InferRequest(inputs, request.get("id"), parameters)
    if parameters is not None and parameters.get("binary_data_output"):
        out.binary_default = True
    for item in requested or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TensorError("each requested output must be an object with a 'name'")
        out.outputs.append(item["name"])
        params = item.get("parameters") or {}
        if isinstance(params, dict) and params.get("binary_data"):
            out.binary_outputs.add(item["name"])
    return out


def encode_response(
    model: str,
    version: str,
    request: InferRequest,
    datatypes: dict[str, str],
    outputs: dict[str, Array],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    tensors = []
    blobs: list[bytes] = []
    for name, array in outputs.items():
        datatype = datatypes.get(name) or datatype_of(array.dtype)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if request.wants_binary(name):
            raw = (
                encode_bytes(array)
                if datatype == "BYTES"
                else np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes()
            )
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif datatype == "BYTES":
            tensor["data"] = [
                x.decode(errors="replace") if isinstance(x, bytes) else str(x)
                for x in array.ravel()
            ]
        else:
            tensor["data"] = np.ascontiguousarray(array.ravel())
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    if request.parameters is not None:
        response["parameters"] = request.parameters
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
