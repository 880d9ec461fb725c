"""Open Inference Protocol tensors ↔ NumPy arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}


class TensorError(ValueError):
    """A tensor in a request does not match what the protocol or the model expects."""


def datatype_of(dtype: np.dtype[Any]) -> str:
    for name, dt in DATATYPES.items():
        if dt == dtype:
            return name
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    raise TensorError(f"no protocol datatype for {dtype}")


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return data if isinstance(data, list) else [data]


def decode(tensor: dict[str, Any]) -> np.ndarray[Any, Any]:
    """A request input (nested or flat ``data``) as an array of its declared shape."""
    name = tensor.get("name")
    if not isinstance(name, str):
        raise TensorError("every input needs a 'name'")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise TensorError(
            f"input '{name}': unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise TensorError(f"input '{name}': 'shape' must be a list of integers ≥ 0")
    if "data" not in tensor:
        raise TensorError(f"input '{name}': 'data' is missing")
    flat = _flatten(tensor["data"])
    if len(flat) != math.prod(shape):
        raise TensorError(
            f"input '{name}': shape {shape} needs {math.prod(shape)} elements, got {len(flat)}"
        )
    try:
        if datatype == "BYTES":
            array = np.empty(len(flat), dtype=object)
            array[:] = [x.encode() if isinstance(x, str) else x for x in flat]
        elif datatype == "BOOL":
            if not all(isinstance(x, bool) or x in (0, 1) for x in flat):
                raise TensorError(f"input '{name}': BOOL data must be true/false (or 0/1)")
            array = np.asarray(flat, dtype=np.bool_)
        else:
            array = np.asarray(flat, dtype=DATATYPES[datatype])
            if array.dtype.kind in "iu" and not all(
                isinstance(x, int) or (isinstance(x, float) and x.is_integer()) for x in flat
            ):
                raise TensorError(f"input '{name}': {datatype} data must be whole numbers")
    except (ValueError, TypeError, OverflowError) as exc:
        raise TensorError(f"input '{name}': data does not fit datatype {datatype}: {exc}") from exc
    return array.reshape(shape)


def encode(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    datatype = datatype_of(array.dtype)
    if datatype == "BYTES":
        data = [x.decode() if isinstance(x, bytes) else str(x) for x in array.ravel()]
    else:
        data = array.ravel().tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
