"""Open Inference Protocol tensors to NumPy arrays and back."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from dockyard.serving.codec import (
    DATATYPES,
    InferRequest,
    TensorError,
    datatype_of,
    decode_request,
    encode_response,
)


def decode(one: dict[str, Any]) -> np.ndarray[Any, Any]:
    """The array of a request holding only ``one`` input (the full JSON decoding path)."""
    return decode_request(orjson.dumps({"inputs": [one]}), None).inputs[0].data


def encode(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    """The JSON tensor a response carries for ``array``."""
    body, _ = encode_response("m", "1", InferRequest([]), {}, {name: array})
    out: dict[str, Any] = orjson.loads(body)["outputs"][0]
    return out


SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True, False, False],
    "UINT8": [0, 1, 2, 127, 254, 255],
    "UINT16": [0, 1, 2, 3, 1000, 65535],
    "UINT32": [0, 1, 2, 3, 4, 2**32 - 1],
    "UINT64": [0, 1, 2, 3, 4, 2**64 - 1],
    "INT8": [-128, -1, 0, 1, 2, 127],
    "INT16": [-(2**15), -1, 0, 1, 2, 2**15 - 1],
    "INT32": [-(2**31), -1, 0, 1, 2, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 1, 2, 2**63 - 1],
    "FP16": [0.0, -1.5, 0.25, 1024.0, 65504.0, -0.5],
    "FP32": [0.0, -1.5, 0.375, 2.0**100, 2.0**-100, 2.5],  # exact in float32
    "FP64": [0.0, -1.5, 0.1, 1.7e308, 5e-324, 1 / 3],
    "BYTES": ["a", "", "héllo", "two words", "7", "ünï"],
}


def tensor(datatype: str, shape: list[int], data: Any, name: str = "x") -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def test_samples_cover_every_datatype() -> None:
    assert set(SAMPLES) == set(DATATYPES)


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_every_datatype_round_trips(datatype: str) -> None:
    data = SAMPLES[datatype]
    array = decode(tensor(datatype, [2, 3], data))
    assert array.shape == (2, 3)
    assert datatype_of(array.dtype) == datatype
    if datatype != "BYTES":
        assert array.dtype == DATATYPES[datatype]
    out = encode("y", array)
    sent = out.pop("data")
    assert out == {"name": "y", "datatype": datatype, "shape": [2, 3]}
    if datatype in ("FP16", "FP32"):  # shortest text that reads back to the same value
        assert np.array_equal(np.asarray(sent, dtype=DATATYPES[datatype]), array.ravel())
    else:
        assert sent == data


def test_nested_and_flat_data_agree() -> None:
    nested = decode(tensor("FP32", [2, 3], [[1, 2, 3], [4, 5, 6]]))
    flat = decode(tensor("FP32", [2, 3], [1, 2, 3, 4, 5, 6]))
    assert nested.shape == flat.shape == (2, 3)
    np.testing.assert_array_equal(nested, flat)
    assert nested[1, 0] == 4


def test_deeply_nested_data() -> None:
    data = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    array = decode(tensor("INT32", [2, 2, 2], data))
    assert array.tolist() == data
    assert encode("y", array)["data"] == list(range(1, 9))


def test_data_is_reshaped_to_the_declared_shape() -> None:
    array = decode(tensor("INT64", [3, 2], [[1, 2, 3], [4, 5, 6]]))
    assert array.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_scalar_and_empty_tensors() -> None:
    scalar = decode(tensor("INT64", [], 7))
    assert scalar.shape == ()
    assert int(scalar) == 7
    empty = decode(tensor("FP32", [2, 0], [[], []]))
    assert empty.shape == (2, 0)
    assert encode("e", empty) == {"name": "e", "datatype": "FP32", "shape": [2, 0], "data": []}


@pytest.mark.parametrize(
    ("shape", "data", "needs", "got"),
    [
        ([2, 3], [1, 2, 3, 4, 5], 6, 5),
        ([2, 3], [[1, 2, 3], [4, 5, 6], [7, 8, 9]], 6, 9),
        ([4], [], 4, 0),
        ([1, 2], 5, 2, 1),
    ],
)
def test_element_count_mismatch(shape: list[int], data: Any, needs: int, got: int) -> None:
    with pytest.raises(TensorError) as info:
        decode(tensor("FP32", shape, data, name="pixels"))
    assert str(info.value) == f"input 'pixels': shape {shape} needs {needs} elements, got {got}"


@pytest.mark.parametrize("datatype", ["FLOAT", "fp32", None, "STRING"])
def test_unknown_datatype(datatype: Any) -> None:
    with pytest.raises(TensorError) as info:
        decode(tensor(datatype, [1], [1], name="pixels"))
    message = str(info.value)
    assert message.startswith(f"input 'pixels': unknown datatype {datatype!r}; expected one of ")
    assert "BOOL" in message
    assert "BYTES" in message


@pytest.mark.parametrize("shape", [[-1], [2.0], "2", None, [2, None]])
def test_bad_shape(shape: Any) -> None:
    with pytest.raises(TensorError, match="'shape' must be a list of integers"):
        decode(tensor("FP32", shape, [1, 2]))


def test_boolean_shape_is_a_tensor_error() -> None:
    with pytest.raises(TensorError, match="'shape' must be a list of integers"):
        decode(tensor("FP32", [True, 2], [1, 2]))


def test_missing_name_and_data() -> None:
    with pytest.raises(TensorError, match="with a 'name'"):
        decode({"datatype": "FP32", "shape": [1], "data": [1]})
    with pytest.raises(TensorError, match="input 'x': 'data' is missing"):
        decode({"name": "x", "datatype": "FP32", "shape": [1]})


@pytest.mark.parametrize(
    ("datatype", "value"), [("UINT8", 256), ("UINT8", -1), ("INT8", 128), ("FP32", "abc")]
)
def test_data_that_does_not_fit(datatype: str, value: Any) -> None:
    with pytest.raises(TensorError, match=f"input 'x': data does not fit datatype {datatype}"):
        decode(tensor(datatype, [1], [value]))


def test_ragged_data_is_refused() -> None:
    with pytest.raises(TensorError):
        decode(tensor("FP32", [2], [1, [2, 3]]))


def test_bool() -> None:
    array = decode(tensor("BOOL", [1, 3], [[True, False, True]]))
    assert array.dtype == np.bool_
    assert array.tolist() == [[True, False, True]]
    out = encode("mask", array)
    assert out["datatype"] == "BOOL"
    assert out["data"] == [True, False, True]
    assert all(type(x) is bool for x in out["data"])


def test_bytes_decode_to_utf8_bytes() -> None:
    array = decode(tensor("BYTES", [2], ["héllo", "b"]))
    assert array.dtype == object
    assert array.tolist() == ["héllo".encode(), b"b"]


def test_encode_numpy_strings_as_bytes() -> None:
    out = encode("labels", np.array(["cat", "dog"]))
    assert out == {"name": "labels", "datatype": "BYTES", "shape": [2], "data": ["cat", "dog"]}


def test_encode_unsupported_dtype() -> None:
    with pytest.raises(TensorError, match="no protocol datatype"):
        encode("c", np.array([1 + 2j]))


def test_encode_keeps_native_json_types() -> None:
    out = encode("p", np.array([[0.5, 0.25]], dtype=np.float32))
    assert out["shape"] == [1, 2]
    assert out["data"] == [0.5, 0.25]
    assert all(type(x) is float for x in out["data"])
    ints = encode("i", np.arange(3, dtype=np.int64))
    assert all(type(x) is int for x in ints["data"])


def test_bool_refuses_strings() -> None:
    with pytest.raises(TensorError):
        decode(tensor("BOOL", [2], ["false", "true"]))


def test_integer_datatype_refuses_fractions() -> None:
    with pytest.raises(TensorError):
        decode(tensor("INT32", [2], [1.7, 2]))
