"""Unmodified Open Inference Protocol clients against the model server: NVIDIA's tritonclient
(HTTP) and the KServe Python SDK's REST client, with and without binary tensor data."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.integration.test_serving import ModelServer
from tests.serving_models import FEATURES, custom_model, onnx_model, versioned_model

httpclient = pytest.importorskip("tritonclient.http")
kserve = pytest.importorskip("kserve")
from tritonclient.utils import InferenceServerException  # noqa: E402

W = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
B = np.array([0.5, -0.5], dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("client-models")
    for build in (onnx_model, custom_model, versioned_model):
        build(root)
    srv = ModelServer("--model-repository", str(root))
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture
def triton(server: ModelServer) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield client
    client.close()


def test_triton_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("onnx") and triton.is_model_ready("versioned", "2")
    assert not triton.is_model_ready("ghost")
    meta = triton.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    model = triton.get_model_metadata("onnx")
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]


@pytest.mark.parametrize("binary", [True, False])
def test_triton_infer(triton: Any, binary: bool) -> None:
    x = FEATURES[:3].astype(np.float32)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("y", binary_data=binary)
    result = triton.infer("onnx", [inp], outputs=[out], request_id="t-1")
    np.testing.assert_allclose(result.as_numpy("y"), x @ W + B, rtol=1e-6)
    assert result.get_response()["id"] == "t-1"
    default = triton.infer("onnx", [inp])  # no outputs named: all, binary by default
    np.testing.assert_allclose(default.as_numpy("y"), x @ W + B, rtol=1e-6)
    for algorithm in ("gzip", "deflate"):
        packed = triton.infer("onnx", [inp], request_compression_algorithm=algorithm)
        np.testing.assert_allclose(packed.as_numpy("y"), x @ W + B, rtol=1e-6)


def test_triton_versions_and_bytes(triton: Any) -> None:
    x = FEATURES[:2]
    inp = httpclient.InferInput("input-0", [2, 3], "FP64")
    inp.set_data_from_numpy(x, binary_data=True)
    predict = httpclient.InferRequestedOutput("predict", binary_data=True)
    v1 = triton.infer("versioned", [inp], model_version="1", outputs=[predict])
    v2 = triton.infer("versioned", [inp], model_version="2", outputs=[predict])
    assert v1.as_numpy("predict").tolist() == [0, 1]
    assert v2.as_numpy("predict").tolist() == [1, 0]
    text = httpclient.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"hello", "wörld".encode()], dtype=object))
    scale = httpclient.InferInput("scale", [2, 1], "FP64")
    scale.set_data_from_numpy(np.array([[1.0], [2.0]]), binary_data=False)
    result = triton.infer(
        "custom",
        [text, scale],
        outputs=[
            httpclient.InferRequestedOutput("upper", binary_data=True),
            httpclient.InferRequestedOutput("length"),
        ],
    )
    assert result.as_numpy("upper").tolist() == [b"HELLO", "wörld".encode().upper()]
    assert result.as_numpy("length").tolist() == [6.0, 13.0]


def test_triton_errors(triton: Any) -> None:
    bad = httpclient.InferInput("x", [1, 2], "FP32")
    bad.set_data_from_numpy(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        triton.infer("onnx", [bad])
    assert info.value.status() == "400"
    assert "input 'x': expected shape [-1, 3], got [1, 2]" in info.value.message()
    with pytest.raises(InferenceServerException) as missing:
        triton.infer("ghost", [bad])
    assert missing.value.status() == "404"


def test_kserve_rest_client(server: ModelServer) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    x = FEATURES[:2].astype(np.float32)

    async def main() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            assert await client.is_server_live(server.url)
            assert await client.is_server_ready(server.url)
            assert await client.is_model_ready(server.url, "onnx")
            assert not await client.is_model_ready(server.url, "ghost")
            for binary in (False, True):
                inp = InferInput("x", list(x.shape), "FP32")
                inp.set_data_from_numpy(x, binary_data=binary)
                request = InferRequest(
                    "onnx",
                    [inp],
                    request_id=f"k-{binary}",
                    request_outputs=[RequestedOutput("y", parameters={"binary_data": binary})],
                )
                response = await client.infer(server.url, request, model_name="onnx")
                assert response.id == f"k-{binary}"
                np.testing.assert_allclose(response.outputs[0].as_numpy(), x @ W + B, rtol=1e-6)
            import httpx

            bad = InferRequest("onnx", [InferInput("x", [1, 2], "FP32", [[1.0, 2.0]])])
            with pytest.raises(httpx.HTTPStatusError) as info:
                await client.infer(server.url, bad, model_name="onnx")
            assert info.value.response.status_code == 400
            assert "expected shape [-1, 3]" in info.value.response.json()["error"]
        finally:
            await client.close()

    asyncio.run(main())
