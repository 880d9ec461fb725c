"""A Kubernetes job's outputs and a claim's usage come back through helper pods: their real
scripts (run here with a real Python, on a real directory) and the real unpacking."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.runtimes import kube_helpers as kh
from dockyard.runtimes.kube_outputs import unpack_outputs
from tests.conftest import free_port


def script_on(text: str, data: Path, tmp_path: Path) -> str:
    """A helper's script with its claim (/data) and termination log moved here."""
    return text.replace('"/data"', repr(str(data))).replace(
        '"/dev/termination-log"', repr(str(tmp_path / "termination-log"))
    )


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "model.joblib").write_bytes(b"\x00model" * 1000)
    (out / "sub" / "metrics.json").write_text('{"accuracy": 0.97}')
    os.symlink("/etc/passwd", out / "planted")  # a link the job left: never followed
    return out


@pytest.fixture
def collector(outputs: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    script = script_on(kh.collect_script(port), outputs, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", script])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url
    proc.kill()
    proc.wait(10)


def test_the_collect_helper_serves_files_and_directories_only(
    collector: str, tmp_path: Path
) -> None:
    answer = httpx.get(f"{collector}/outputs.tar.gz", timeout=30)
    assert answer.status_code == 200
    archive = tmp_path / "outputs.tar.gz"
    archive.write_bytes(answer.content)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["model.joblib", "sub", "sub/metrics.json"]
    back = tmp_path / "back"
    note = unpack_outputs(archive, back, 1 << 20)
    assert (back / "model.joblib").read_bytes() == b"\x00model" * 1000
    assert json.loads((back / "sub" / "metrics.json").read_text()) == {"accuracy": 0.97}
    assert note == "3 files and directories, 6018 bytes"
    assert httpx.get(f"{collector}/etc/passwd", timeout=30).status_code == 404


def test_the_usage_helper_counts_files_and_bytes(outputs: Path, tmp_path: Path) -> None:
    script = script_on(kh.USAGE, outputs, tmp_path)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    message = (tmp_path / "termination-log").read_text()
    assert kh.usage_of(message) == (3, 6000 + 18 + len("/etc/passwd"))
    assert kh.usage_of("not json") is None and kh.usage_of('{"files": 1}') is None


def hostile(tmp_path: Path, name: str, data: bytes = b"x") -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = tmp_path / f"hostile-{len(data)}.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path


def test_outputs_never_land_outside_their_directory_nor_past_the_limit(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with pytest.raises(ValueError, match="archive holds"):
        unpack_outputs(hostile(tmp_path, "../escaped"), target, 1 << 20)
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(ValueError, match=r"MiB|bytes"):
        unpack_outputs(hostile(tmp_path, "big", b"y" * 4096), target, 1024)
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(b"\x1f\x8bnot really")
    with pytest.raises(ValueError, match="damaged"):
        unpack_outputs(damaged, target, 1 << 20)
