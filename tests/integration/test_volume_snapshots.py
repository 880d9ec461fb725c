"""Snapshots and restores through a real control plane: on request, with hooks run in the job
that writes the volume, into a new volume and in place, and a damaged chunk named."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, wait_until
from tests.factories import job, python, volume

# Rewrites state.bin in place, 16 x 64 KiB per version, unless the snapshot hook paused it.
WRITER = """
import os, pathlib, time
root = pathlib.Path(os.environ['DOCKYARD_VOLUME_DATA'])
state, pause = root / 'state.bin', root / 'pause'
state.write_bytes(bytes(16 * 65536))
n = 0
while not (root / 'stop').exists():
    if pause.exists():
        if not (root / 'paused').exists():
            (root / 'paused').touch()
        time.sleep(0.01)
        continue
    (root / 'paused').unlink(missing_ok=True)
    n = (n + 1) % 256
    with open(state, 'r+b') as fh:
        for _ in range(16):
            fh.write(bytes([n]) * 65536)
"""
# the pre hook asks the writer to pause and waits until it has; the post hook resumes it
PRE = (
    "import os, pathlib, time; r = pathlib.Path(os.environ['DOCKYARD_VOLUME_DATA']); "
    "(r / 'pause').touch(); t = time.time() + 10\n"
    "while not (r / 'paused').exists() and time.time() < t: time.sleep(0.01)\n"
    "time.sleep(0.15)"
)
POST = "import os, pathlib; (pathlib.Path(os.environ['DOCKYARD_VOLUME_DATA']) / 'pause').unlink()"


def _status(server: ServerProcess, name: str) -> dict[str, Any]:
    status: dict[str, Any] = server.client.get("Volume", name)["status"]
    return status


def test_snapshot_then_restore_to_a_new_volume_and_in_place(server: ServerProcess) -> None:
    client = server.client
    client.apply([volume("data", tier="fast")])
    client.wait("Volume", "data")
    root = Path(_status(server, "data")["path"])
    (root / "models").mkdir()
    (root / "models" / "m.bin").write_bytes(b"weights" * 1000)
    (root / "notes.txt").write_text("v1")
    time.sleep(0.15)
    first = client.snapshot_volume("data")["status"]
    assert first["snapshots"] == 1 and first["files"] == 2
    (root / "notes.txt").write_text("v2")
    time.sleep(0.15)
    second = client.snapshot_volume("data")["status"]
    listed = client.volume_snapshots("data")
    assert [s["id"] for s in listed] == [first["lastSnapshot"], second["lastSnapshot"]]
    assert listed[1]["newBytes"] < 100  # only notes.txt changed

    restored = client.restore_volume("data", first["lastSnapshot"], to="data-v1")
    assert restored["status"]["phase"] == "Ready"
    copy = Path(restored["status"]["path"])
    assert (copy / "notes.txt").read_text() == "v1"
    assert (copy / "models" / "m.bin").read_bytes() == b"weights" * 1000
    assert restored["spec"]["tier"] == "fast"

    (root / "stray.txt").write_text("written after the snapshot")
    client.restore_volume("data", first["lastSnapshot"])
    assert (root / "notes.txt").read_text() == "v1" and not (root / "stray.txt").exists()
    reasons = [e["reason"] for e in client.events("Volume", "data")]
    assert "Snapshot" in reasons and "Restored" in reasons


def test_a_damaged_chunk_fails_the_restore_and_names_the_file(server: ServerProcess) -> None:
    client = server.client
    client.apply([volume("data")])
    client.wait("Volume", "data")
    root = Path(_status(server, "data")["path"])
    (root / "checkpoint.pt").write_bytes(b"\x01" * 300_000)
    time.sleep(0.15)
    sid = client.snapshot_volume("data")["status"]["lastSnapshot"]
    chunks = server.home / "snapshots" / "chunks"
    for path in chunks.rglob("*"):
        if path.is_file():
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
    failed = client.restore_volume("data", sid, to="copy")
    assert failed["status"]["phase"] == "Failed"
    assert "checkpoint.pt" in failed["status"]["message"]
    assert "damaged" in failed["status"]["message"] or "decompress" in failed["status"]["message"]


def test_hooks_pause_a_writing_job_so_its_file_is_whole(server: ServerProcess) -> None:
    client = server.client
    hooks = {"pre": [{"command": python(PRE)}], "post": [{"command": python(POST)}]}
    client.apply([volume("data", snapshots={"hooks": hooks})])
    client.wait("Volume", "data")
    client.apply([job("writer", python(WRITER), volumes=[{"name": "data"}])])
    root = Path(_status(server, "data")["path"])
    wait_until((root / "state.bin").exists, 30, message="the writer started")
    time.sleep(0.3)
    try:
        status = client.snapshot_volume("data", timeout=120)["status"]
        assert "failed" not in status.get("message", ""), status
        snapshots = client.volume_snapshots("data")
        assert snapshots[-1]["unsettled"] == []
        client.restore_volume("data", status["lastSnapshot"], to="copy")
        copy = Path(_status(server, "copy")["path"])
        data = (copy / "state.bin").read_bytes()
        assert len(data) == 16 * 65536 and len(set(data)) == 1  # one version, whole
        assert not (root / "pause").exists()  # the post hook resumed the writer
    finally:
        (root / "stop").touch()
    client.wait("Job", "writer", timeout=60)


@pytest.mark.parametrize("schedule", ["61 * * * *", "every hour"])
def test_a_bad_schedule_is_refused_at_apply(server: ServerProcess, schedule: str) -> None:
    from dockyard.errors import InvalidSpec

    with pytest.raises(InvalidSpec, match="cron expression"):
        server.client.apply([volume("data", snapshots={"schedule": schedule})])


def test_the_scheduler_extender_of_a_local_control_plane_has_no_nodes(
    server: ServerProcess,
) -> None:
    import httpx

    from dockyard.placement.labels import Need, needs_annotation

    url = f"{server.client.url}/placement/prioritize"
    pod = {"metadata": {"name": "p", "namespace": "n", "annotations": {}}}
    body = {"Pod": pod, "Nodes": None, "NodeNames": ["node-a"]}
    # no token: the kube-scheduler sends none; a pod that needs nothing scores 0 everywhere
    answer = httpx.post(url, json=body, timeout=10)
    assert answer.json() == [{"Host": "node-a", "Score": 0}]
    # one that needs data: no node list to place by, and nothing Kubernetes is made on the
    # extender's behalf (the scheduler keeps its own choice: every node scores the same)
    pod["metadata"]["annotations"] = needs_annotation([Need(kind="Volume", name="data")])
    answer = httpx.post(url, json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [{"Host": "node-a", "Score": 0}]
    assert "runs nothing on Kubernetes" in server.log_tail(50)
