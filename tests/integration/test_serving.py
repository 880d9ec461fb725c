"""The model server as a process: every runtime, versions, repository, errors, binary, v1."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import free_port, wait_until
from tests.lanes import lightgbm_unavailable, missing
from tests.serving_models import FEATURES, build_all

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class ModelServer:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.serving", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, message="model server ready")

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.communicate(timeout=30)[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc.stdout:
            self.proc.stdout.close()

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Iterator[ModelServer]:
    root = next(iter(models.values())).parent
    token = root.parent / "token"
    token.write_text(TOKEN + "\n")
    srv = ModelServer(
        "--model-repository", str(root), "--max-batch-size", "16", "--token-file", str(token)
    )
    srv.wait_ready()
    yield srv
    srv.stop()


def infer(
    srv: ModelServer, model: str, inputs: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    r = srv.post(f"/v2/models/{model}/infer", json={"inputs": inputs, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def fp(name: str, rows: Any, datatype: str = "FP64") -> dict[str, Any]:
    array = np.asarray(rows)
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.tolist()}


def test_server_metadata_and_health(server: ModelServer) -> None:
    meta = server.get("/v2").json()
    assert meta["name"] == "dockyard" and "binary_tensor_data" in meta["extensions"]
    assert server.get("/v2/health/live").status_code == 200
    assert server.get("/v2/health/ready").status_code == 200
    assert server.get("/v2/models/onnx/ready").status_code == 200
    assert server.get("/v2/models/versioned/versions/2/ready").status_code == 200


@pytest.mark.parametrize(
    ("model", "name", "datatype"),
    [
        ("xgboost", "input-0", "FP32"),
        ("lightgbm", "input-0", "FP64"),
        ("onnx", "x", "FP32"),
        ("torch", "x", "FP32"),
    ],
)
def test_numeric_runtimes_agree_with_their_frameworks(
    server: ModelServer, model: str, name: str, datatype: str
) -> None:
    if model == "lightgbm" and (why := lightgbm_unavailable()):
        missing("libgomp", why)
    meta = server.get(f"/v2/models/{model}").json()
    assert meta["inputs"] == [{"name": name, "datatype": datatype, "shape": [-1, 3]}]
    out = infer(server, model, [fp(name, FEATURES[:4], datatype)])["outputs"][0]
    values = np.asarray(out["data"]).reshape(out["shape"])
    if model in ("onnx", "torch"):  # y = x·W + b with known weights
        w = np.array([[1, 0], [0, 1], [1, 1]])  # both models were built with these weights
        expected = FEATURES[:4] @ w + np.array([0.5, -0.5])
        np.testing.assert_allclose(values, expected, rtol=1e-5)
    else:  # boosted trees separate the two classes of the training data
        assert values.shape == (4,)
        assert ((values > 0.5) == np.array([0, 1, 0, 1], dtype=bool)).all()


def test_sklearn_method_from_settings_and_outputs_filtering(server: ModelServer) -> None:
    out = infer(
        server, "sklearn", [fp("anything", FEATURES[:2])], id="req-7", parameters={"trace": "abc"}
    )
    assert out["id"] == "req-7" and out["parameters"] == {"trace": "abc"}
    assert [o["name"] for o in out["outputs"]] == ["predict_proba"]  # method in settings
    assert out["outputs"][0]["shape"] == [2, 2]
    both = infer(
        server,
        "sklearn",
        [fp("input-0", FEATURES[:2])],
        outputs=[{"name": "predict"}, {"name": "predict_proba"}],
    )
    assert [o["name"] for o in both["outputs"]] == ["predict", "predict_proba"]
    assert both["outputs"][0]["data"] == [0, 1]


def test_custom_runtime_with_bytes(server: ModelServer) -> None:
    out = infer(
        server,
        "custom",
        [
            {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["ab", "xyz"]},
            fp("scale", [[1.0], [2.0]]),
        ],
    )
    values = {o["name"]: o["data"] for o in out["outputs"]}
    assert values == {"length": [3.0, 7.0], "upper": ["AB", "XYZ"]}


def test_versions(server: ModelServer) -> None:
    meta = server.get("/v2/models/versioned").json()
    assert meta["versions"] == ["1", "2"]
    x = [fp("input-0", FEATURES[:2])]
    v1 = infer_at(server, "/v2/models/versioned/versions/1/infer", x)
    v2 = infer_at(server, "/v2/models/versioned/versions/2/infer", x)
    newest = infer(server, "versioned", x, outputs=[{"name": "predict"}])
    assert v1["model_version"] == "1" and v1["outputs"][0]["data"] == [0, 1]
    assert v2["outputs"][0]["data"] == [1, 0]
    assert newest["model_version"] == "2"
    missing = server.post("/v2/models/versioned/versions/9/infer", json={"inputs": x})
    assert missing.status_code == 404 and "no version '9'" in missing.json()["error"]


def infer_at(srv: ModelServer, path: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    r = srv.post(path, json={"inputs": inputs, "outputs": [{"name": "predict"}]})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": [fp("x", [[1.0, 2.0]])]}, 400, "expected shape [-1, 3], got [1, 2]"),
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2]}]},
            400,
            "input 'x': shape [1, 3] needs 3 elements, got 2",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "datatype": "BYTES", "shape": [1, 3], "data": ["a", "b", "c"]}
                ]
            },
            400,
            "input 'x': expected datatype FP32, got BYTES",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]},
            400,
            "unknown datatype 'FP99'",
        ),
        (
            {"inputs": [fp("x", [[1.0, 2.0, 3.0]], "FP32")], "outputs": [{"name": "nope"}]},
            400,
            "unknown output 'nope'; this model has: y",
        ),
        ({"inputs": []}, 400, "non-empty 'inputs' list"),
    ],
)
def test_bad_requests_are_400_with_a_reason(
    server: ModelServer, body: dict[str, Any], status: int, message: str
) -> None:
    r = server.post("/v2/models/onnx/infer", json=body)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_unknown_model_and_route(server: ModelServer) -> None:
    r = server.post("/v2/models/ghost/infer", json={"inputs": [fp("x", [[1]])]})
    assert r.status_code == 404 and "model 'ghost' not found" in r.json()["error"]
    assert server.get("/v2/models/ghost/ready").status_code == 404
    assert server.get("/v3/nothing").status_code == 404
    assert server.post("/v2/models/onnx/infer", content=b"{oops").status_code == 400


def test_transport_errors_have_their_class_status(server: ModelServer) -> None:
    path = "/v2/models/onnx/infer"
    r = server.post(path, content=b"{}", headers={"Content-Encoding": "br"})
    assert r.status_code == 415 and "unsupported Content-Encoding 'br'" in r.json()["error"]
    r = server.post(path, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "not valid gzip data" in r.json()["error"]
    r = server.post(path, content=b"{}", headers={"Inference-Header-Content-Length": "x"})
    assert r.status_code == 400 and "must be an integer" in r.json()["error"]


def test_a_worker_process_raises_the_error_class_of_its_model(tmp_path: Path) -> None:
    from dockyard.serving.codec import TensorError
    from dockyard.serving.worker import WorkerProcess

    (tmp_path / "model.py").write_text(
        "from dockyard.serving.codec import TensorError\n"
        "class Model:\n"
        "    signature = {'inputs': [{'name': 'x', 'datatype': 'FP64', 'shape': [-1]}],\n"
        "                 'outputs': [{'name': 'y', 'datatype': 'FP64', 'shape': [-1]}]}\n"
        "    def __init__(self, path, parameters): pass\n"
        "    def predict(self, inputs):\n"
        "        if (inputs['x'] < 0).any():\n"
        "            raise TensorError('negative x', hint='send x >= 0')\n"
        "        if (inputs['x'] == 0).any():\n"
        "            raise ZeroDivisionError('zero x')\n"
        "        return {'y': 1 / inputs['x']}\n"
    )
    worker = WorkerProcess(tmp_path, {"runtime": "custom", "customClass": "model:Model"})
    try:
        assert worker.wait_ready(), worker.error
        assert worker.predict({"x": np.array([2.0])}, ["y"])["y"].tolist() == [0.5]
        with pytest.raises(TensorError) as info:
            worker.predict({"x": np.array([-1.0])}, ["y"])
        assert (info.value.message, info.value.hint, info.value.status) == (
            "negative x",
            "send x >= 0",
            400,
        )
        with pytest.raises(RuntimeError, match="ZeroDivisionError: zero x"):
            worker.predict({"x": np.array([0.0])}, ["y"])
    finally:
        worker.close()


def test_binary_request_and_response(server: ModelServer) -> None:
    x = FEATURES[:2].astype(np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    ).encode()
    r = server.post(
        "/v2/models/onnx/infer",
        content=header + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:length])
    out = head["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 16 and "data" not in out
    y = np.frombuffer(r.content[length:], dtype="<f4").reshape(out["shape"])
    np.testing.assert_allclose(y, x @ np.array([[1, 0], [0, 1], [1, 1]]) + [0.5, -0.5])


def test_binary_bytes_and_raw_request(server: ModelServer) -> None:
    texts = [b"hi", b"there"]
    raw = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    scale = np.array([[1.0], [1.0]])
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                },
                {
                    "name": "scale",
                    "datatype": "FP64",
                    "shape": [2, 1],
                    "parameters": {"binary_data_size": scale.nbytes},
                },
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    r = server.post(
        "/v2/models/custom/infer",
        content=header + raw + scale.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    outs = json.loads(r.content[:length])["outputs"]
    sizes = [o["parameters"]["binary_data_size"] for o in outs]
    blob = r.content[length:]
    assert np.frombuffer(blob[: sizes[0]], dtype="<f8").tolist() == [3.0, 6.0]
    assert blob[sizes[0] :] == struct.pack("<I", 2) + b"HI" + struct.pack("<I", 5) + b"THERE"
    # a raw body: one input, batch of one, every output binary
    single = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    r = server.post(
        "/v2/models/onnx/infer",
        content=single.tobytes(),
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    assert np.frombuffer(r.content[length:], dtype="<f4").tolist() == [4.5, 4.5]
    bad = server.post(
        "/v2/models/onnx/infer",
        content=header[:10],
        headers={"Inference-Header-Content-Length": "99"},
    )
    assert bad.status_code == 400


def test_kserve_v1(server: ModelServer) -> None:
    r = server.post("/v1/models/onnx:predict", json={"instances": FEATURES[:2].tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], [[1.5, 0.5], [1.5, -0.5]])
    assert server.get("/v1/models/onnx").json() == {"name": "onnx", "ready": True}
    assert "onnx" in server.get("/v1/models").json()["models"]
    bad = server.post("/v1/models/onnx:predict", json={"rows": []})
    assert bad.status_code == 400


def test_repository_extension(server: ModelServer) -> None:
    index = server.post("/v2/repository/index", headers=AUTH).json()
    assert {"name": "versioned", "version": "2", "state": "READY", "reason": ""} in index
    assert server.post("/v2/repository/models/xgboost/unload", headers=AUTH).status_code == 200
    assert server.get("/v2/models/xgboost/ready").status_code == 503
    assert server.get("/v2/health/ready").status_code == 200  # only loaded models count
    index = server.post("/v2/repository/index", headers=AUTH).json()
    assert ("xgboost", "UNAVAILABLE") in {(m["name"], m["state"]) for m in index}
    assert server.post("/v2/repository/models/xgboost/load", headers=AUTH).status_code == 200
    assert server.get("/v2/models/xgboost/ready").status_code == 200
    assert server.post("/v2/repository/models/ghost/load", headers=AUTH).status_code == 404
    # without the token nothing changes (tests/security/ has every case)
    assert server.post("/v2/repository/models/xgboost/unload").status_code == 401
    assert server.get("/v2/models/xgboost/ready").status_code == 200


def test_concurrent_requests_are_batched_and_correct(server: ModelServer) -> None:
    before = _metric(server, "dockyard_inference_batch_size_count", "onnx")
    results: dict[int, Any] = {}

    def one(i: int) -> None:
        x = np.array([[float(i), 0.0, 0.0]] * (1 + i % 3))
        r = server.post("/v2/models/onnx/infer", json={"inputs": [fp("x", x, "FP32")]})
        results[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (status, body) in results.items():
        assert status == 200
        assert body["outputs"][0]["shape"] == [1 + i % 3, 2]
        assert body["outputs"][0]["data"][:2] == [i + 0.5, -0.5]
    calls = _metric(server, "dockyard_inference_batch_size_count", "onnx") - before
    assert 0 < calls <= 48


def _metric(srv: ModelServer, name: str, model: str) -> float:
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name) and f'model="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics(server: ModelServer, models: dict[str, Path]) -> None:
    infer(server, "onnx", [fp("x", [[1.0, 2.0, 3.0]], "FP32")])
    server.post("/v2/models/onnx/infer", json={"inputs": [fp("x", [[1.0]], "FP32")]})
    text = server.get("/metrics").text
    for name in (
        "dockyard_inference_requests_total",
        "dockyard_inference_request_seconds",
        "dockyard_inference_queue_seconds",
        "dockyard_inference_batch_seconds",
        "dockyard_inference_predict_seconds",
        "dockyard_inference_batch_size",
        "dockyard_inference_queue_depth",
        "dockyard_inference_in_flight",
        "dockyard_models_loaded",
    ):
        assert name in text
    assert (
        _metric(server, 'dockyard_inference_requests_total{model="onnx",status="400"', "onnx") >= 1
        or 'status="400"' in text
    )
    loaded = len(models) + 1  # every model once, "versioned" twice
    assert f"dockyard_models_loaded {loaded:.1f}" in text


SLOW = """
import time
import numpy as np


class Model:
    signature = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
                 "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]}

    def __init__(self, path, parameters):
        pass

    def predict(self, inputs):
        if inputs["x"][0] > 0:
            time.sleep(1.5)
        return {"y": inputs["x"] + 1}
"""


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "model.py").write_text(SLOW)
    srv = ModelServer("--model", f"slow={tmp_path / 'slow'}", "--no-batching")
    try:
        srv.wait_ready()
        result: dict[str, Any] = {}

        def call() -> None:
            r = srv.post("/v2/models/slow/infer", json={"inputs": [fp("x", [1.0])]})
            result["status"], result["body"] = r.status_code, r.json()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the request is inside predict
        srv.proc.send_signal(signal.SIGTERM)
        caller.join(30)
        assert result["status"] == 200 and result["body"]["outputs"][0]["data"] == [2.0]
        assert srv.proc.wait(30) == 0
    finally:
        srv.stop()


def test_a_model_that_cannot_load_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.pkl").write_bytes(b"not a pickle")
    srv = ModelServer("--model", f"broken={tmp_path / 'broken'}")
    assert srv.proc.wait(60) == 1
    out = srv.output()
    assert "broken" in out and "Traceback" not in out.split("ERROR", 1)[-1]


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    srv = ModelServer("--model", f"x={tmp_path / 'nope'}")
    assert srv.proc.wait(60) == 2
    assert "does not exist" in srv.output()


def test_warm_pool_starts_servers_from_a_ready_interpreter(
    models: dict[str, Path], tmp_path: Path
) -> None:
    sock = tmp_path / "pool.sock"
    pool = subprocess.Popen(
        [sys.executable, "-m", "dockyard.serving.warm", "--socket", str(sock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(sock.exists, 60, message="warm pool ready")
        srv = ModelServer("--warm", str(sock), "--model", f"onnx={models['onnx']}")
        try:
            srv.wait_ready()
            out = infer(srv, "onnx", [fp("x", [[1.0, 2.0, 3.0]], "FP32")])
            assert out["outputs"][0]["data"] == [4.5, 4.5]
            srv.proc.send_signal(signal.SIGTERM)  # forwarded to the forked server
            assert srv.proc.wait(30) == 0
            log = srv.output()
            assert "loaded onnx version 1" in log  # the fork wrote to our stdout
        finally:
            srv.stop()
        assert pool.poll() is None  # the pool outlives the servers it forked
    finally:
        pool.terminate()
        pool.communicate(timeout=30)
    # without a pool the server simply starts cold
    cold = ModelServer("--warm", str(tmp_path / "absent.sock"), "--model", f"onnx={models['onnx']}")
    try:
        cold.wait_ready()
        assert infer(cold, "onnx", [fp("x", [[0.0, 0.0, 0.0]], "FP32")])["outputs"][0]["data"] == [
            0.5,
            -0.5,
        ]
    finally:
        cold.stop()
