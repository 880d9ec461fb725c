"""Model servers for the security tests: real processes on 127.0.0.1, small real models."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_serving import ModelServer
from tests.serving_models import custom_model, onnx_model

TOKEN = "security-test-token-5f1d2c7e9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
X = {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}
INFER = {"inputs": [X]}

# reports whether the server's token reached the model's process environment
ENV_CHECK = """
import os
import numpy as np


class Model:
    signature = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
                 "outputs": [{"name": "token_seen", "datatype": "FP64", "shape": [-1]}]}

    def __init__(self, path, parameters):
        pass

    def predict(self, inputs):
        seen = any("security-test-token" in v for v in os.environ.values())
        return {"token_seen": np.full(len(inputs["x"]), float(seen))}
"""


def model_repository(root: Path, *extra: str) -> Path:
    """onnx (x FP32 [-1, 3] → y), custom (BYTES and FP64 inputs), and ``extra`` copies of
    the onnx model (for load/unload) plus ``envcheck`` when asked."""
    root.mkdir(parents=True, exist_ok=True)
    onnx_model(root)
    custom_model(root)
    for name in extra:
        if name == "envcheck":
            (root / name).mkdir()
            (root / name / "model.py").write_text(ENV_CHECK)
            (root / name / "model-settings.json").write_text(
                json.dumps({"runtime": "custom", "customClass": "model:Model"})
            )
        else:
            (root / name).mkdir()
            (root / name / "model.onnx").write_bytes((root / "onnx" / "model.onnx").read_bytes())
    return root


@contextlib.contextmanager
def running(*args: str, env: dict[str, str] | None = None) -> Iterator[ModelServer]:
    server = ModelServer(*args, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def all_running(servers: dict[str, ModelServer]) -> Iterator[dict[str, ModelServer]]:
    """Servers started together (each boots while the others do), stopped together."""
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def request(server: ModelServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, timeout=60, **kwargs)


def raw_exchange(server: ModelServer, *parts: bytes, timeout: float = 60) -> bytes:
    """Send ``parts`` on one connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):  # answered and closed already
                break
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


class PeakGrowth:
    """How far a process's peak resident memory rose above its size at the start of the
    ``with`` block (Linux: /proc/PID/clear_refs ``5`` resets the peak, VmHWM reads it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.growth = 0

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise LookupError(key)

    def __enter__(self) -> PeakGrowth:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = self._status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = self._status("VmHWM") - self.before
