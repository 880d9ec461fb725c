"""Jobs on a real server: attempts, retries, scheduling, cancel, timeout, outputs, datasets."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dockyard.client import Client
from tests import factories as f
from tests.conftest import ServerProcess, wait_until


def phase_of(c: Client, kind: str, name: str) -> str:
    return str(c.get(kind, name)["status"].get("phase"))


def wait_phase(
    c: Client, kind: str, name: str, phases: set[str], timeout: float = 60
) -> dict[str, Any]:
    return c.wait(kind, name, until=phases, timeout=timeout)


@pytest.fixture
def small_node(server_factory: Any) -> ServerProcess:
    """A server that believes the node has 4 CPUs, 4 GiB and no GPU."""
    srv: ServerProcess = server_factory(
        DOCKYARD_NODE_CPU="4", DOCKYARD_NODE_MEMORY="4Gi", DOCKYARD_NODE_GPU="0"
    )
    srv.start()
    return srv


def test_job_succeeds_with_logs_and_env(server: ServerProcess) -> None:
    c = server.client
    code = (
        "import os; print('job', os.environ['DOCKYARD_JOB_NAME'], "
        "os.environ['DOCKYARD_ATTEMPT'], os.environ['GREETING'])"
    )
    c.apply([f.job("hello", f.python(code), env={"GREETING": "hi"})])
    job = wait_phase(c, "Job", "hello", {"Succeeded", "Failed"})
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["status"]["exitCode"] == 0 and job["status"]["attempts"] == 1
    usage = job["status"]["usage"]
    assert usage["cpuSeconds"] > 0 and usage["maxRssBytes"] > 1_000_000  # a Python process
    assert b"".join(c.logs("Job", "hello")) == b"job hello 1 hi\n"
    assert job["status"]["conditions"][0]["type"] == "Ready"
    assert job["status"]["conditions"][0]["status"] == "True"


def test_retries_until_success_and_every_attempt_is_visible(server: ServerProcess) -> None:
    c = server.client
    code = (
        "import os, sys\n"
        "n = int(os.environ['DOCKYARD_ATTEMPT'])\n"
        "print('attempt', n)\n"
        "sys.exit(0 if n == 3 else 7)"
    )
    c.apply([f.job("flaky", f.python(code), retry={"limit": 3, "backoffSeconds": 0.2})])
    job = wait_phase(c, "Job", "flaky", {"Succeeded", "Failed"})
    assert job["status"]["phase"] == "Succeeded"
    attempts = c.workloads("Job", "flaky")
    assert [(a["number"], a["phase"], a["exitCode"]) for a in attempts] == [
        (1, "Failed", 7),
        (2, "Failed", 7),
        (3, "Succeeded", 0),
    ]
    assert b"".join(c.logs("Job", "flaky", attempt=2)) == b"attempt 2\n"
    # the backoff was respected between attempts 1 and 2
    end1 = datetime.fromisoformat(attempts[0]["finishedAt"].replace("Z", "+00:00"))
    start2 = datetime.fromisoformat(attempts[1]["startedAt"].replace("Z", "+00:00"))
    assert (start2 - end1).total_seconds() >= 0.2


def test_retries_exhausted(server: ServerProcess) -> None:
    c = server.client
    c.apply(
        [
            f.job(
                "doomed",
                f.python("print('boom'); raise SystemExit(2)"),
                retry={"limit": 1, "backoffSeconds": 0},
            )
        ]
    )
    job = wait_phase(c, "Job", "doomed", {"Succeeded", "Failed"})
    st = job["status"]
    assert st["phase"] == "Failed" and st["attempts"] == 2 and st["exitCode"] == 2
    assert "attempt 2 failed" in st["message"] and "1 retries used" in st["message"]
    assert "boom" in st["logTail"]


def test_exit_codes_not_in_on_exit_codes_are_not_retried(server: ServerProcess) -> None:
    c = server.client
    c.apply(
        [
            f.job(
                "picky",
                f.python("raise SystemExit(5)"),
                retry={"limit": 3, "backoffSeconds": 0, "onExitCodes": [42]},
            )
        ]
    )
    assert wait_phase(c, "Job", "picky", {"Failed"})["status"]["attempts"] == 1


def test_missing_command_fails_clearly_without_retry(server: ServerProcess) -> None:
    c = server.client
    c.apply([f.job("typo", ["pyhton", "train.py"], retry={"limit": 3})])
    st = wait_phase(c, "Job", "typo", {"Failed"})["status"]
    assert st["reason"] == "CommandNotFound" and st["attempts"] == 1
    assert "command 'pyhton' not found" in st["message"]


def test_pending_with_reasons_and_priority(small_node: ServerProcess, tmp_path: Path) -> None:
    c = small_node.client
    gate = tmp_path / "gate"
    wait_for_gate = f.python(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)"
    )
    c.apply([f.job("holder", wait_for_gate, resources={"cpu": 2})])
    wait_phase(c, "Job", "holder", {"Running"})
    c.apply(
        [
            f.job("big", f.python("pass"), resources={"cpu": 4}),
            f.job("huge", f.python("pass"), resources={"cpu": 64}),
            f.job("gpu", f.python("pass"), resources={"cpu": 0.1, "gpu": 1}),
        ]
    )
    wait_until(lambda: c.get("Job", "big")["status"].get("reason") == "Unschedulable")
    assert c.get("Job", "big")["status"]["message"] == "needs 4 cpu, 2 free"
    wait_until(lambda: "in total" in c.get("Job", "huge")["status"].get("message", ""))
    assert "needs 64 cpu" in c.get("Job", "huge")["status"]["message"]
    gpu = c.get("Job", "gpu")["status"]
    assert gpu["phase"] == "Pending" and "gpu, but this node has none" in gpu["message"]
    # priority: with 2 cpus taken, two 2-cpu jobs wait; the higher priority one goes first
    c.delete("Job", "big")
    c.apply(
        [
            f.job("low", wait_for_gate, resources={"cpu": 2}, priority=0),
            f.job("high", wait_for_gate, resources={"cpu": 2}, priority=10),
            f.job("blocker", wait_for_gate, resources={"cpu": 2}),
        ]
    )
    wait_until(
        lambda: (
            phase_of(c, "Job", "blocker") == "Running" or phase_of(c, "Job", "high") == "Running"
        )
    )
    gate.write_text("")
    wait_phase(c, "Job", "holder", {"Succeeded"})
    for name in ("low", "high", "blocker"):
        wait_phase(c, "Job", name, {"Succeeded"})
    starts = {n: c.workloads("Job", n)[0]["startedAt"] for n in ("low", "high")}
    assert starts["high"] < starts["low"]
    assert phase_of(c, "Job", "gpu") == "Pending"


def test_cancel_stops_the_attempt(server: ServerProcess, tmp_path: Path) -> None:
    c = server.client
    c.apply(
        [
            f.job(
                "long",
                f.python("import time; print('up', flush=True); time.sleep(60)"),
                retry={"limit": 3},
            )
        ]
    )
    wait_phase(c, "Job", "long", {"Running"})
    c.cancel("long")
    st = wait_phase(c, "Job", "long", {"Cancelled"})["status"]
    assert st["attempts"] == 1
    # the job says Cancelled at once; its attempt ends when the stop has been carried out
    wait_until(lambda: c.workloads("Job", "long")[0]["phase"] != "Running", timeout=30)
    attempts = c.workloads("Job", "long")
    assert attempts[0]["phase"] == "Failed" and attempts[0]["reason"] == "Stopped"


def test_timeout(server: ServerProcess) -> None:
    c = server.client
    c.apply([f.job("slow", f.python("import time; time.sleep(60)"), timeoutSeconds=0.5)])
    st = wait_phase(c, "Job", "slow", {"Failed"})["status"]
    assert st["reason"] == "Timeout" and "timeoutSeconds=0.5" in st["message"]


def test_a_new_spec_runs_again(server: ServerProcess) -> None:
    c = server.client
    c.apply([f.job("again", f.python("print('one')"))])
    wait_phase(c, "Job", "again", {"Succeeded"})
    c.apply([f.job("again", f.python("print('two')"))])
    job = wait_phase(c, "Job", "again", {"Succeeded"})
    assert job["metadata"]["generation"] == 2
    assert b"".join(c.logs("Job", "again")) == b"two\n"
    assert len(c.workloads("Job", "again")) == 2


def test_delete_a_running_job_stops_it(server: ServerProcess, tmp_path: Path) -> None:
    c = server.client
    pidfile = tmp_path / "pid"
    c.apply(
        [
            f.job(
                "victim",
                f.python(
                    f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
                    "time.sleep(60)"
                ),
            )
        ]
    )
    wait_until(lambda: pidfile.exists() and pidfile.read_text() != "")
    c.delete("Job", "victim")
    wait_until(lambda: not c.list("Job"), message="job gone")
    pid = int(pidfile.read_text())
    wait_until(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        )
    )


def test_model_output_is_registered_with_lineage(server: ServerProcess) -> None:
    c = server.client
    outputs = {"model": {"name": "tiny", "path": "model.pkl"}}
    c.apply([f.job("train", f.python(f.TRAIN), outputs=outputs)])
    job = wait_phase(c, "Job", "train", {"Succeeded", "Failed"})
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["status"]["modelVersion"] == "tiny@1"
    version = c.model_version("tiny", "latest")
    assert version["version"] == 1 and version["metrics"] == {"accuracy": 1.0}
    assert version["lineage"]["job"] == "train" and version["lineage"]["attempt"] == 1
    digest = version["files"]["model.pkl"]["sha256"]
    blob = server.home / "artifacts" / "sha256" / digest[:2] / digest[2:]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    c.set_alias("tiny", "production", 1)
    assert c.model_version("tiny", "production")["aliases"] == ["latest", "production"]
    model = wait_until_ready_model(c, "tiny")
    assert model["status"]["versions"] == 1


def wait_until_ready_model(c: Client, name: str) -> dict[str, Any]:
    wait_until(lambda: c.get("Model", name)["status"].get("phase") == "Ready")
    return c.get("Model", name)


def test_missing_model_artifact_fails_the_job(server: ServerProcess) -> None:
    c = server.client
    outputs = {"model": {"name": "ghost", "path": "model.pkl"}}
    c.apply(
        [
            f.job(
                "liar",
                f.python("import os; open(os.environ['DOCKYARD_OUTPUT_DIR'] + '/other.txt', 'w')"),
                outputs=outputs,
            )
        ]
    )
    st = wait_phase(c, "Job", "liar", {"Succeeded", "Failed"})["status"]
    assert st["phase"] == "Failed" and st["reason"] == "ModelRegistrationFailed"
    assert "'model.pkl' is missing" in st["message"] and "other.txt" in st["message"]


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    (root / "table.csv").write_text("a,b\n1,2\n")
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_datasets_fetch_checksum_mount_and_detect_changes(
    server: ServerProcess, tmp_path: Path, http_files: str
) -> None:
    c = server.client
    src = tmp_path / "src"
    src.mkdir()
    (src / "rows.txt").write_text("1\n2\n3\n")
    c.apply(
        [
            f.volume("data"),
            f.dataset("local", source=f"file://{src}"),
            f.dataset("remote", source=f"{http_files}/table.csv"),
            f.dataset("pinned", source=f"file://{src}", sha256="0" * 64, path="pinned"),
        ]
    )
    local = wait_phase(c, "Dataset", "local", {"Ready", "Failed"})["status"]
    assert local["phase"] == "Ready" and local["files"] == 1 and len(local["sha256"]) == 64
    remote = wait_phase(c, "Dataset", "remote", {"Ready", "Failed"})["status"]
    assert remote["phase"] == "Ready" and remote["bytes"] == 8
    pinned = wait_phase(c, "Dataset", "pinned", {"Ready", "Failed"})["status"]
    assert pinned["phase"] == "Failed" and "does not match spec.sha256" in pinned["message"]
    code = "import os; print(open(os.environ['DOCKYARD_DATA_LOCAL'] + '/rows.txt').read())"
    c.apply([f.job("reader", f.python(code), datasets=[{"name": "local"}])])
    assert wait_phase(c, "Job", "reader", {"Succeeded", "Failed"})["status"]["phase"] == "Succeeded"
    assert b"".join(c.logs("Job", "reader")) == b"1\n2\n3\n\n"
    # someone edits the cached copy: jobs refuse data that no longer matches its checksum
    (Path(local["path"]) / "rows.txt").write_text("1\n2\n4\n")
    c.apply([f.job("reader2", f.python(code), datasets=[{"name": "local"}])])
    st = wait_phase(c, "Job", "reader2", {"Succeeded", "Failed"})["status"]
    assert st["phase"] == "Failed"
    assert "dataset 'local' changed on its volume" in st["message"]
    assert "rows.txt changed content" in st["message"] and st["reason"] == "DatasetChanged"
    assert phase_of(c, "Job", "reader") == "Succeeded"  # what already ran stays as it was


def test_dataset_prepared_by_a_command(server: ServerProcess) -> None:
    c = server.client
    prep = {
        "command": f.python(
            "import os; open(os.environ['DOCKYARD_OUTPUT_DIR'] + '/n.txt', 'w').write('7')"
        ),
        "resources": {"cpu": 0.1},
    }
    c.apply([f.volume("data"), f.dataset("made", prepare=prep)])
    st = wait_phase(c, "Dataset", "made", {"Ready", "Failed"})["status"]
    assert st["phase"] == "Ready", st
    assert (Path(st["path"]) / "n.txt").read_text() == "7"
    broken = {"command": f.python("raise SystemExit('no data today')"), "resources": {"cpu": 0.1}}
    c.apply([f.dataset("broken", prepare=broken)])
    st = wait_phase(c, "Dataset", "broken", {"Ready", "Failed"})["status"]
    assert st["phase"] == "Failed" and "no data today" in st["message"]


def test_a_deleted_model_stays_deleted(server: ServerProcess) -> None:
    from dockyard.errors import NotFound

    c = server.client
    c.apply(
        [
            f.job(
                "train", f.python(f.TRAIN), outputs={"model": {"name": "gone", "path": "model.pkl"}}
            )
        ]
    )
    wait_phase(c, "Job", "train", {"Succeeded"})
    c.delete("Model", "gone")
    wait_until(lambda: not c.list("Model"), message="model deleted")
    for _ in range(10):  # several passes of the loop: the finished job must not register again
        c.health()
        import time

        time.sleep(0.1)
    with pytest.raises(NotFound):
        c.get("Model", "gone")
    assert phase_of(c, "Job", "train") == "Succeeded"
