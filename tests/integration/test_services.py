"""Services: a model server per replica, restarted when it dies, rolled to new versions."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.client import Client
from tests import factories as f
from tests.conftest import ServerProcess, wait_until


def train(c: Client, name: str = "train", threshold: float = 1.5) -> None:
    code = f.TRAIN.replace("[0, 0, 1, 1]", "[0, 0, 1, 1]" if threshold == 1.5 else "[0, 1, 1, 1]")
    c.apply([f.job(name, f.python(code), outputs={"model": {"name": "tiny", "path": "model.pkl"}})])
    job = c.wait("Job", name, until={"Succeeded", "Failed"})
    assert job["status"]["phase"] == "Succeeded", job["status"]


def ready(c: Client, name: str, version: int) -> dict[str, Any]:
    wait_until(
        lambda: (
            c.get("Service", name)["status"].get("modelVersion") == f"tiny@{version}"
            and c.get("Service", name)["status"].get("phase") == "Ready"
        ),
        60,
        message=f"service {name} ready with version {version}",
    )
    return c.get("Service", name)


def request(*rows: float) -> dict[str, Any]:
    return {
        "id": "r1",
        "inputs": [
            {
                "name": "input-0",
                "datatype": "FP64",
                "shape": [len(rows), 1],
                "data": [[r] for r in rows],
            }
        ],
    }


@pytest.fixture
def served(server: ServerProcess) -> ServerProcess:
    train(server.client)
    server.client.apply([f.service("tiny", "tiny@latest")])
    ready(server.client, "tiny", 1)
    return server


def test_service_serves_the_registered_model(served: ServerProcess) -> None:
    c = served.client
    svc = c.get("Service", "tiny")
    url = svc["status"]["url"]
    assert url.startswith("http://127.0.0.1:")
    meta = httpx.get(f"{url}/v2/models/tiny", timeout=5).json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 1]}]
    result = c.predict("tiny", request(0.0, 3.0))
    assert result["id"] == "r1" and result["model_version"] == "1"
    assert result["outputs"][0]["data"] == [0, 1]
    bad = httpx.post(
        f"{url}/v2/models/tiny/infer",
        timeout=5,
        json={
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}]
        },
    )
    assert bad.status_code == 400 and "expected shape [-1, 1]" in bad.json()["error"]
    assert httpx.get(f"{url}/v2/models/nope", timeout=5).status_code == 404


def test_a_dead_replica_is_restarted(served: ServerProcess) -> None:
    c = served.client
    first = c.workloads("Service", "tiny")[0]
    os.killpg(first["details"]["pid"], signal.SIGKILL)
    wait_until(lambda: len(c.workloads("Service", "tiny")) == 2, 30, message="restart")
    svc = ready(c, "tiny", 1)
    assert svc["status"]["restarts"] == 1
    assert c.predict("tiny", request(3.0))["outputs"][0]["data"] == [1]
    # the first replica compiled the model; the restarted one read it without scikit-learn
    assert len(list((served.home / "cache" / "compiled").glob("*.npz"))) == 1
    logs = b"".join(c.logs("Service", "tiny")).decode()
    assert "LogisticRegression (compiled, from cache)" in logs, logs


def test_new_version_rolls_out_and_the_old_replica_stops(served: ServerProcess) -> None:
    c = served.client
    old = c.workloads("Service", "tiny")[0]
    train(c, "train-v2", threshold=0.5)
    ready(c, "tiny", 2)
    wait_until(lambda: c.workloads("Service", "tiny")[0]["phase"] != "Running", 30)
    work = c.workloads("Service", "tiny")
    assert work[0]["id"] == old["id"] and work[0]["reason"] == "Stopped"
    assert c.predict("tiny", request(1.0))["outputs"][0]["data"] == [1]  # v2 says 1 for x=1
    c.set_alias("tiny", "stable", 1)
    c.apply([f.service("tiny", "tiny@stable")])
    ready(c, "tiny", 1)
    assert c.predict("tiny", request(1.0))["outputs"][0]["data"] == [0]


def test_a_taken_port_is_reported(server: ServerProcess) -> None:
    c = server.client
    train(c)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        c.apply([f.service("fixed", "tiny", port=port)])
        wait_until(lambda: c.get("Service", "fixed")["status"].get("reason") == "PortInUse")
        assert f"port {port} is already in use" in c.get("Service", "fixed")["status"]["message"]


def test_a_service_waits_for_its_model(server: ServerProcess) -> None:
    c = server.client
    c.apply(
        [
            f.job("later", ["false"], outputs={"model": {"name": "future", "path": "m"}}),
            f.service("early", "future@latest"),
        ]
    )
    wait_until(
        lambda: "has no version yet" in c.get("Service", "early")["status"].get("message", "")
    )
    assert c.get("Service", "early")["status"]["phase"] == "Pending"


def test_deleting_a_service_stops_its_replicas(served: ServerProcess) -> None:
    c = served.client
    pid = c.workloads("Service", "tiny")[0]["details"]["pid"]
    c.delete("Service", "tiny")
    wait_until(lambda: not c.list("Service"))
    wait_until(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        )
    )
    assert json.dumps(c.list("Model"))  # the model stays


def test_dockyard_serve_a_registry_version(server: ServerProcess) -> None:
    import subprocess
    import sys

    from tests.conftest import free_port, http_ok

    c = server.client
    train(c)
    c.set_alias("tiny", "production", 1)
    port = free_port()
    env = {**server.env, "DOCKYARD_URL": c.url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard.cli.main",
            "serve",
            "--model",
            "prod=models:/tiny@production",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/ready"),
            60,
            message="dockyard serve ready",
        )
        r = httpx.post(
            f"http://127.0.0.1:{port}/v2/models/prod/infer", json=request(3.0), timeout=10
        )
        assert r.json()["model_version"] == "1" and r.json()["outputs"][0]["data"] == [1]
        cached = list((server.home / "serve-cache" / "default" / "tiny" / "1").iterdir())
        assert {p.name for p in cached} >= {"model.pkl", ".dockyard-complete"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "loaded prod version 1" in out
    bad = subprocess.run(
        [sys.executable, "-m", "dockyard.cli.main", "serve", "--model", "x=models:/tiny@nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1 and "has no alias 'nope'" in bad.stderr


def test_a_fixed_port_moves_to_the_new_version(server: ServerProcess) -> None:
    from tests.conftest import free_port

    c = server.client
    train(c)
    port = free_port()
    c.apply([f.service("pinned", "tiny@latest", port=port)])
    svc = ready(c, "pinned", 1)
    assert svc["status"]["url"] == f"http://127.0.0.1:{port}"
    train(c, "train-v2", threshold=0.5)
    svc = ready(c, "pinned", 2)
    assert svc["status"]["url"] == f"http://127.0.0.1:{port}"
    r = httpx.post(f"http://127.0.0.1:{port}/v2/models/tiny/infer", json=request(1.0), timeout=5)
    assert r.json()["model_version"] == "2"


def test_a_gpu_service_holds_its_gpu_and_a_gpu_job_waits_for_it(server_factory: Any) -> None:
    srv: ServerProcess = server_factory(DOCKYARD_NODE_GPU="1")
    c = srv.start()
    train(c)
    c.apply([f.service("gpu", "tiny", resources={"cpu": 0.1, "gpu": 1})])
    ready(c, "gpu", 1)
    (replica,) = [w for w in c.workloads("Service", "gpu") if w["phase"] == "Running"]
    assert replica["request"]["gpuIndices"] == [0]  # the assignment is recorded as data
    environ = Path(f"/proc/{replica['details']['pid']}/environ").read_bytes().split(b"\0")
    assert b"CUDA_VISIBLE_DEVICES=0" in environ  # and the runtime gave the replica its GPU
    assert f"DOCKYARD_SERVE_PORT={replica['details']['port']}".encode() in environ

    c.apply([f.job("needs-gpu", f.python("print('never')"), resources={"cpu": 0.1, "gpu": 1})])
    wait_until(lambda: c.get("Job", "needs-gpu")["status"].get("reason") == "Unschedulable")
    status = c.get("Job", "needs-gpu")["status"]
    assert status["phase"] == "Pending"
    assert status["message"] == "needs 1 gpu, 0 free"
    assert c.workloads("Job", "needs-gpu") == []  # never started, so the GPU was not given twice
    c.delete("Service", "gpu")
    wait_until(lambda: c.get("Job", "needs-gpu")["status"]["phase"] == "Succeeded", timeout=30)
