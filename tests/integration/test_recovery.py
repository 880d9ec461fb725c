"""The store is the truth: kill -9 the server, start it again, nothing lost or run twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import factories as f
from tests.conftest import ServerProcess, wait_until


def gated_job(name: str, marker: Path, gate: Path) -> dict[str, Any]:
    """A job that records each start in ``marker`` and finishes when ``gate`` exists."""
    code = (
        f"import os, time\nopen({str(marker)!r}, 'a').write('started\\n')\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\nprint('finished')"
    )
    return f.job(name, f.python(code))


def test_kill_9_while_a_job_runs(server_factory: Any, tmp_path: Path) -> None:
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    srv: ServerProcess = server_factory()
    c = srv.start()
    c.apply([gated_job("survivor", marker, gate)])
    wait_until(lambda: c.get("Job", "survivor")["status"].get("phase") == "Running")
    wait_until(marker.exists)
    srv.kill()
    c = srv.start()  # same home, same database
    job = c.get("Job", "survivor")
    assert job["status"]["phase"] == "Running"
    gate.write_text("")
    job = c.wait("Job", "survivor", until={"Succeeded", "Failed"}, timeout=30)
    assert job["status"]["phase"] == "Succeeded" and job["status"]["exitCode"] == 0
    assert marker.read_text() == "started\n"  # neither lost nor started twice
    assert len(c.workloads("Job", "survivor")) == 1
    assert b"".join(c.logs("Job", "survivor")) == b"finished\n"


def test_a_job_that_ends_while_the_server_is_down(server_factory: Any, tmp_path: Path) -> None:
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    srv: ServerProcess = server_factory()
    c = srv.start()
    c.apply([gated_job("orphan", marker, gate)])
    wait_until(marker.exists)
    srv.kill()
    gate.write_text("")
    run_dir = next((srv.home / "runs").glob("job-orphan-*"))
    wait_until((run_dir / "status.json").exists, message="job ended")
    c = srv.start()
    job = c.wait("Job", "orphan", until={"Succeeded", "Failed"}, timeout=30)
    assert job["status"]["phase"] == "Succeeded"
    assert marker.read_text() == "started\n"


def test_a_graceful_stop_ends_workloads_and_a_restart_reruns_them(
    server_factory: Any, tmp_path: Path
) -> None:
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    srv: ServerProcess = server_factory()
    c = srv.start()
    c.apply([gated_job("resumable", marker, gate)])
    wait_until(marker.exists)
    srv.stop()  # SIGTERM: the server stops what it started
    attempts_dir = list((srv.home / "runs").glob("job-resumable-*"))
    assert all((d / "status.json").exists() for d in attempts_dir)
    gate.write_text("")
    c = srv.start()
    job = c.wait("Job", "resumable", until={"Succeeded", "Failed"}, timeout=30)
    assert job["status"]["phase"] == "Succeeded"
    attempts = c.workloads("Job", "resumable")
    assert [a["reason"] for a in attempts] == ["Interrupted", "Completed"]
    assert marker.read_text() == "started\nstarted\n"


def test_a_dataset_preparation_stopped_with_the_server_runs_again(
    server_factory: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = (
        f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
        "open(os.environ['DOCKYARD_OUTPUT_DIR'] + '/rows.csv', 'w').write('1,2')"
    )
    srv: ServerProcess = server_factory()
    c = srv.start()
    c.apply(
        [
            f.volume("data"),
            f.dataset("made", prepare={"command": f.python(code), "resources": {"cpu": 0.1}}),
        ]
    )
    wait_until(lambda: c.get("Dataset", "made")["status"].get("phase") == "Preparing")
    srv.stop()
    gate.write_text("")
    c = srv.start()
    ds = c.wait("Dataset", "made", until={"Ready", "Failed"}, timeout=60)
    assert ds["status"]["phase"] == "Ready", ds["status"]
    assert [w["reason"] for w in c.workloads("Dataset", "made")] == ["Interrupted", "Completed"]
