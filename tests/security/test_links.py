"""A workload plants links where the server works; the server never follows them out.

Each case is what a job can do to its volume or output directory (the local runtime runs the
job as a real process here; a container can do the same inside its mounts). After each,
nothing outside changed and nothing outside was read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from dockyard.client import Client
from dockyard.errors import UnsafePath
from dockyard.paths import Inside
from tests import factories as f
from tests.conftest import ServerProcess

TRAINED = {"model": {"name": "stolen", "path": "model.pkl"}}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory the workloads must never reach through the server."""
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("the server's secret")
    (secret / "keep").mkdir()
    (secret / "keep" / "data.csv").write_text("1,2\n")
    return secret


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(root.rglob("*"))
    }


def run(c: Client, name: str, code: str, **spec: Any) -> dict[str, Any]:
    c.apply([f.job(name, f.python(code), **spec)])
    return c.wait("Job", name, timeout=60)


def test_a_model_output_that_is_a_link_is_not_registered(
    server: ServerProcess, outside: Path
) -> None:
    before = snapshot(outside)
    plant = (
        "import os; out = os.environ['DOCKYARD_OUTPUT_DIR']\n"
        f"os.symlink({str(outside / 'secret.txt')!r}, out + '/model.pkl')"
    )
    job = run(server.client, "plant-model", plant, outputs=TRAINED)
    assert (job["status"]["phase"], job["status"]["reason"]) == (
        "Failed",
        "ModelRegistrationFailed",
    )
    assert "is a link" in job["status"]["message"]
    assert server.client.list("Model") == []  # no version: its bytes can never be served
    assert snapshot(outside) == before


def test_a_metrics_file_that_is_a_link_is_not_read(server: ServerProcess, outside: Path) -> None:
    plant = (
        "import os, pickle; out = os.environ['DOCKYARD_OUTPUT_DIR']\n"
        "pickle.dump([1], open(out + '/model.pkl', 'wb'))\n"
        f"os.symlink({str(outside / 'secret.txt')!r}, out + '/metrics.json')"
    )
    job = run(server.client, "plant-metrics", plant, outputs=TRAINED)
    assert job["status"]["reason"] == "ModelRegistrationFailed"
    assert "metrics.json" in job["status"]["message"] and "link" in job["status"]["message"]
    assert "the server's secret" not in str(server.client.get("Job", "plant-metrics"))


def test_a_log_replaced_by_a_link_is_not_followed(server: ServerProcess, outside: Path) -> None:
    plant = (  # the job's working directory is runs/ID/work: its log is ../log
        "import os; print('before')\n"
        "os.remove('../log')\n"
        f"os.symlink({str(outside / 'secret.txt')!r}, '../log')"
    )
    job = run(server.client, "plant-log", plant)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert b"the server's secret" not in b"".join(server.client.logs("Job", "plant-log"))
    assert "the server's secret" not in str(server.client.get("Job", "plant-log"))  # logTail


def test_a_large_log_is_streamed_whole(server: ServerProcess) -> None:
    job = run(server.client, "chatty", "import sys; sys.stdout.write('x' * 3_000_000 + 'END')")
    assert job["status"]["phase"] == "Succeeded", job["status"]
    log = b"".join(server.client.logs("Job", "chatty"))  # read 1 MiB at a time by the server
    assert len(log) == 3_000_003 and log.endswith(b"END")


def test_a_linked_model_directory_is_refused(server: ServerProcess, outside: Path) -> None:
    plant = (
        "import os; out = os.environ['DOCKYARD_OUTPUT_DIR']\n"
        "os.mkdir(out + '/model')\n"
        f"os.symlink({str(outside / 'keep')!r}, out + '/model/weights')"
    )
    job = run(server.client, "plant-dir", plant, outputs={"model": {"name": "m", "path": "model"}})
    assert job["status"]["reason"] == "ModelRegistrationFailed"


@pytest.mark.parametrize("where", ["subPath", "checkpoint"])
def test_a_mount_through_a_planted_link_is_refused(
    server: ServerProcess, outside: Path, where: str
) -> None:
    c = server.client
    c.apply([f.volume("vol")])
    link_at = "work" if where == "subPath" else "checkpoints"
    plant = (
        f"import os; os.symlink({str(outside)!r}, os.environ['DOCKYARD_VOLUME_VOL'] + '/{link_at}')"
    )
    assert run(c, "planter", plant, volumes=[{"name": "vol"}])["status"]["phase"] == "Succeeded"
    before = snapshot(outside)
    if where == "subPath":
        spec: dict[str, Any] = {"volumes": [{"name": "vol", "subPath": "work/new"}]}
    else:
        spec = {"checkpoint": {"volume": "vol"}}
    job = run(c, "victim", "print('ran')", **spec)
    assert job["status"]["phase"] == "Failed"
    assert job["status"]["reason"] == "StartFailed"
    assert "link" in job["status"]["message"]
    assert snapshot(outside) == before  # no directory made out there


def test_a_dataset_directory_through_a_link_is_neither_written_nor_purged(
    server: ServerProcess, outside: Path, tmp_path: Path
) -> None:
    c = server.client
    c.apply([f.volume("vol")])
    vol = "os.environ['DOCKYARD_VOLUME_VOL']"
    plant = f"import os; os.symlink({str(outside / 'keep')!r}, {vol} + '/ds')"
    assert run(c, "planter", plant, volumes=[{"name": "vol"}])["status"]["phase"] == "Succeeded"
    before = snapshot(outside)
    source = tmp_path / "source"
    source.mkdir()
    (source / "rows.csv").write_text("9,9\n")
    c.apply([f.dataset("ds", volume="vol", source=source.as_uri())])
    ds = c.wait("Dataset", "ds", timeout=60)
    assert ds["status"]["phase"] == "Ready"  # the link itself was moved aside, not written through
    assert snapshot(outside) == before
    assert not (server.home / "volumes" / "default" / "vol" / "ds").is_symlink()
    # a link planted where the committed data was: purge removes the link, not its target
    vol = server.home / "volumes" / "default" / "vol"
    os.rename(vol / "ds", vol / "ds-moved")
    os.symlink(outside / "keep", vol / "ds")
    c.delete("Dataset", "ds", purge=True)
    _gone(c, "Dataset", "ds")
    assert snapshot(outside) == before
    assert not (vol / "ds").exists() and not (vol / "ds").is_symlink()


def _gone(c: Client, kind: str, name: str) -> None:
    from dockyard.errors import NotFound
    from tests.conftest import wait_until

    def gone() -> bool:
        try:
            c.get(kind, name)
        except NotFound:
            return True
        return False

    wait_until(gone, timeout=30, message=f"{kind} {name} deleted")


def test_a_file_source_outside_the_allowed_directories_is_refused(
    server: ServerProcess, outside: Path
) -> None:
    c = server.client
    c.apply([f.volume("vol"), f.dataset("leak", volume="vol", source="file:///etc/passwd")])
    ds = c.wait("Dataset", "leak", timeout=30)
    assert (ds["status"]["phase"], ds["status"]["reason"]) == ("Failed", "UnsafePath")
    assert "outside the directories the server reads from" in ds["status"]["message"]
    assert list((server.home / "volumes" / "default" / "vol").rglob("passwd")) == []


# -- the helper itself, against a link swapped in while it works ------------------------------
def test_a_link_swapped_in_between_check_and_use_is_never_followed(
    tmp_path: Path, outside: Path
) -> None:
    volume = tmp_path / "volume"
    (volume / "a").mkdir(parents=True)
    before = snapshot(outside)
    stop = threading.Event()

    def swap() -> None:  # flip 'a' between a directory and a link to the outside
        while not stop.is_set():
            try:
                os.rename(volume / "a", volume / "a.dir")
                os.symlink(outside / "keep", volume / "a")
                os.unlink(volume / "a")
                os.rename(volume / "a.dir", volume / "a")
            except OSError:  # the helper made 'a' meanwhile: start over
                for leftover in (volume / "a", volume / "a.dir"):
                    if leftover.is_symlink():
                        leftover.unlink()
                if not (volume / "a").exists() and (volume / "a.dir").exists():
                    os.rename(volume / "a.dir", volume / "a")

    racer = threading.Thread(target=swap)
    racer.start()
    inside = Inside(volume)
    refused = 0
    try:
        for i in range(2000):
            for act in (inside.mkdirs, inside.remove, inside.files):
                try:
                    act(f"a/made-{i}" if act == inside.mkdirs else "a/data.csv")
                except (UnsafePath, FileNotFoundError):
                    refused += 1
    finally:
        stop.set()
        racer.join()
    assert snapshot(outside) == before  # nothing made, removed or listed out there
    assert refused > 0  # the race did happen, and was refused
