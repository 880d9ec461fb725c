"""Property-based fuzz of the model server's request decoding (the Open Inference Protocol
codec and the body decompression): whatever a client sends, decoding either returns a request
within the limits or raises one of the codec's own errors (400/413) — never anything else,
never recursing into the input, and never allocating in proportion to a shape the body does
not carry (the 100-byte header that declared ``shape: [10**8]`` of BYTES and reached 0.95 GB).
"""

from __future__ import annotations

import gzip
import json
import struct
import tracemalloc
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import DockyardError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from dockyard.serving.app import Inflater
from dockyard.serving.codec import DATATYPES, InferRequest, TensorError, decode_request

FUZZ = settings(
    max_examples=300,
    deadline=None,  # no timing in tests: only outcomes and allocations are asserted
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_ELEMENTS = 64
MAX_DEPTH = 6

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)


class Deep:
    """``leaf`` inside ``depth`` lists, written as text (no serializer recurses that deep)."""

    def __init__(self, depth: int, leaf: Any) -> None:
        self.text = "[" * depth + json.dumps(leaf) + "]" * depth


def dump(value: Any) -> str:
    """JSON text of generated values: any integer, and Deep nesting, which orjson and json
    refuse to write."""
    if isinstance(value, Deep):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


small_dims = st.lists(st.integers(min_value=0, max_value=4), max_size=3)
giant = st.sampled_from([10**8, 10**12, 2**63, 2**64 + 1])
shapes = st.one_of(
    small_dims,
    small_dims,
    st.tuples(small_dims, giant, small_dims).map(lambda t: [*t[0], t[1], *t[2]]),
    st.lists(st.just(1), min_size=30, max_size=70),  # too many dimensions
    st.lists(st.one_of(st.integers(-3, 3), st.just(2.0), st.booleans(), st.none()), max_size=3),
    json_values,
)
datatypes = st.one_of(
    st.sampled_from(sorted(DATATYPES)),
    st.sampled_from(["BYTES", "INT64", "BOOL"]),  # the paths that walk nested data
    st.text(max_size=5),
    st.none(),
)
data = st.one_of(
    json_values,
    st.lists(scalars, max_size=24),
    st.lists(st.lists(scalars, max_size=4), max_size=4),
    st.builds(Deep, st.integers(min_value=1, max_value=1100), scalars),
    st.builds(lambda d, x: [x, Deep(d, x)], st.integers(1, 1100), scalars),  # ragged
)


@st.composite
def tensors(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """One input: JSON data, or binary data (with the bytes the body carries for it)."""
    tensor: dict[str, Any] = {"name": draw(st.text(max_size=4)), "datatype": draw(datatypes)}
    if draw(st.integers(0, 9)):
        tensor["shape"] = draw(shapes)
    blob = b""
    if draw(st.booleans()):
        if draw(st.booleans()):  # BYTES elements with their length prefixes
            items = draw(st.lists(st.binary(max_size=6), max_size=6))
            blob = b"".join(struct.pack("<I", len(x)) + x for x in items)
        else:
            blob = draw(st.binary(max_size=48))
        size = draw(st.one_of(st.just(len(blob)), st.just(len(blob)), st.integers(-2, 64), scalars))
        tensor["parameters"] = {"binary_data_size": size}
    elif draw(st.integers(0, 9)):
        tensor["data"] = draw(data)
    return tensor, blob


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A body and its Inference-Header-Content-Length, from well-formed to anything."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        body = draw(st.binary(max_size=200))
        return body, draw(st.one_of(st.none(), st.integers(-5, 300)))
    if kind == 1:
        return dump(draw(json_values)).encode(), None
    inputs = draw(st.lists(tensors(), min_size=1, max_size=3))
    request: dict[str, Any] = {"inputs": [t for t, _ in inputs]}
    for key in ("id", "parameters", "outputs"):
        if draw(st.integers(0, 3)) == 0:
            request[key] = draw(
                st.one_of(json_values, st.builds(Deep, st.integers(1, 400), st.just({})))
            )
    head = dump(request).encode()
    blobs = b"".join(b for _, b in inputs)
    if not blobs and draw(st.booleans()):
        return head, None
    if draw(st.integers(0, 4)):
        return head + blobs, len(head)
    return head + blobs, draw(st.integers(-5, len(head) + 10))


@st.composite
def lying_requests(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """Well-formed requests whose shapes declare far more elements than the body carries."""
    datatype = draw(st.sampled_from(sorted(DATATYPES)))
    shape = draw(st.tuples(small_dims, giant, small_dims).map(lambda t: [*t[0], t[1], *t[2]]))
    tensor: dict[str, Any] = {"name": "x", "datatype": datatype, "shape": shape}
    if draw(st.booleans()):
        tensor["data"] = draw(st.lists(scalars, max_size=8))
        return dump({"inputs": [tensor]}).encode(), None
    blob = draw(st.binary(max_size=64))
    tensor["parameters"] = {"binary_data_size": len(blob)}
    head = dump({"inputs": [tensor]}).encode()
    return head + blob, len(head)


def decode(body: bytes, header_length: int | None, **limits: int) -> InferRequest | None:
    try:
        return decode_request(body, header_length, **limits)
    except (TensorError, PayloadTooLarge):
        return None  # the codec's own errors: 400 and 413


@FUZZ
@given(requests())
def test_decoding_answers_within_the_limits_or_with_its_own_errors(
    case: tuple[bytes, int | None],
) -> None:
    body, header_length = case
    request = decode(body, header_length, max_elements=MAX_ELEMENTS, max_depth=MAX_DEPTH)
    if request is None:
        return
    assert request.inputs
    assert sum(i.data.size for i in request.inputs) <= MAX_ELEMENTS
    for tensor in request.inputs:
        assert list(tensor.data.shape) == tensor.shape
        assert len(tensor.shape) <= MAX_DEPTH
        assert tensor.data.dtype == DATATYPES[tensor.datatype]
    assert request.id is None or isinstance(request.id, str)
    orjson.dumps({"id": request.id, "parameters": request.parameters})  # echoable


@FUZZ
@given(st.one_of(requests(), lying_requests()))
def test_decoding_allocates_in_proportion_to_the_body_not_to_declared_shapes(
    case: tuple[bytes, int | None],
) -> None:
    """With the element limit out of the way (10**12), what decoding allocates is bounded by
    the body it was given: a declared shape alone never makes it allocate."""
    body, header_length = case
    tracemalloc.start()
    try:
        decode(body, header_length, max_elements=10**12, max_depth=MAX_DEPTH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 256 * 1024 + 64 * len(body), (peak, len(body))


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(gzip.compress),
        st.binary(max_size=300).map(zlib.compress),
        st.integers(0, 5000).map(lambda n: gzip.compress(b"\0" * n)),
        st.integers(0, 5000).map(lambda n: zlib.compress(b"\0" * n)[: n % 17 + 5]),
        st.lists(st.binary(max_size=50).map(gzip.compress), max_size=5).map(b"".join),
    ),
    st.sampled_from([b"gzip", b"deflate", b"x-gzip"]),
    st.integers(min_value=1, max_value=4096),
)
def test_decompression_stops_at_its_limit(body: bytes, encoding: bytes, limit: int) -> None:
    inflater = Inflater(body, encoding, limit)
    try:
        done = inflater.run(1 << 20)
    except (InvalidRequest, PayloadTooLarge):
        assert inflater.size <= limit + 1
        return
    assert done and inflater.size <= limit
    assert len(inflater.body()) == inflater.size


def test_the_reported_attacks_are_refused_without_allocating() -> None:
    """The issue's cases, in the codec: BYTES shape [10**8] with a 100-byte header, BYTES
    nested 990 deep, shape [10**12], and a header length that does not fit."""
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "t",
                    "datatype": "BYTES",
                    "shape": [10**8],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    tracemalloc.start()
    try:
        with pytest.raises(TensorError, match="need at least 400000000 bytes"):
            decode_request(header + b"\0\0\0\0", len(header), max_elements=10**12)
        with pytest.raises(PayloadTooLarge, match="max_elements"):
            decode_request(header + b"\0\0\0\0", len(header))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    deep = dump(
        {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "data": Deep(990, "x")}]}
    ).encode()
    with pytest.raises(TensorError, match="nested more than 32 levels"):
        decode_request(deep, None)
    huge = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [10**12]}]})
    with pytest.raises(PayloadTooLarge, match="max_elements"):
        decode_request(huge, None)
    with pytest.raises(TensorError, match="does not fit a body"):
        decode_request(header, len(header) + 1)


def test_inflating_a_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 KiB that inflate to 64 MiB
    inflater = Inflater(bomb, b"gzip", 1 << 20)
    with pytest.raises(PayloadTooLarge, match="max_decompressed_bytes"):
        inflater.run(64 << 20)
    assert inflater.size <= (1 << 20) + 1
    assert isinstance(PayloadTooLarge("x"), DockyardError)
    assert issubclass(UnsupportedMediaType, DockyardError)
