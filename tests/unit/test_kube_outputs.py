"""A Kubernetes job's outputs come back through its log: the real shell wrapper, real tar."""

from __future__ import annotations

import base64
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.runtimes.containers import OUTPUT
from dockyard.runtimes.kube_outputs import COLLECT, OUTPUTS_MARKER, log_of, unpack_outputs


def run_wrapped(out: Path, *command: str) -> subprocess.CompletedProcess[bytes]:
    """The pod's command line, with the output directory moved to ``out``."""
    script = COLLECT.replace(OUTPUT, str(out))
    return subprocess.run(
        ["/bin/sh", "-c", script, "dockyard-workload", *command],
        capture_output=True,
        check=False,
        timeout=60,
    )


def test_outputs_follow_the_log_and_the_exit_code_is_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "model.joblib").write_bytes(b"\x00model" * 1000)
    (out / "sub" / "metrics.json").write_text('{"accuracy": 0.97}')
    done = run_wrapped(out, "python3", "-c", "print('epoch 1'); raise SystemExit(3)")
    assert done.returncode == 3
    assert log_of(done.stdout) == b"epoch 1\n"
    back = tmp_path / "back"
    note = unpack_outputs(done.stdout, back, 1 << 20)
    assert (back / "model.joblib").read_bytes() == b"\x00model" * 1000
    assert (back / "sub" / "metrics.json").read_text() == '{"accuracy": 0.97}'
    assert note.endswith("6018 bytes")


def test_a_log_without_outputs_or_with_damaged_ones_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no outputs"):
        unpack_outputs(b"just a log\n", tmp_path / "a", 1 << 20)
    damaged = f"log\n{OUTPUTS_MARKER}\nH4sIAAAA!!not-base64\n".encode()
    with pytest.raises(ValueError, match="damaged"):
        unpack_outputs(damaged, tmp_path / "b", 1 << 20)


def hostile(name: str, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    encoded = base64.b64encode(buffer.getvalue())
    return b"log\n" + OUTPUTS_MARKER.encode() + b"\n" + encoded + b"\n"


def test_outputs_never_land_outside_their_directory_nor_past_the_limit(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with pytest.raises(ValueError, match="archive holds"):
        unpack_outputs(hostile("../escaped"), target, 1 << 20)
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(ValueError, match="MiB"):
        unpack_outputs(hostile("big", b"y" * 4096), target, 1024)
