"""A model runtime in its own process, for models whose Python work holds the GIL.

The server keeps parsing requests on its event loop while a batch computes in the worker, and
the two no longer take turns on one interpreter lock. The worker is started with ``spawn`` (the
server has threads; forking them is unsafe), loads the model itself, and then answers
``(inputs, outputs)`` messages over a pipe with ``("ok", result)``, ``("invalid", problem)``
(a ``DockyardError`` as code, detail and hint, raised again through ``from_problem``) or
``("error", text)``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError, from_problem
from dockyard.serving.runtimes.base import Array


def _serve(
    conn: multiprocessing.connection.Connection, path: str, settings: dict[str, Any]
) -> None:
    from dockyard.serving.runtimes.registry import load_runtime
    from dockyard.serving.settings import ModelSettings

    runtime = load_runtime(Path(path), ModelSettings.model_validate(settings))
    conn.send(("ready", None))
    while True:
        try:
            inputs, outputs = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", runtime.predict(inputs, outputs)))
        except DockyardError as exc:
            problem = {
                "code": exc.code,
                "detail": exc.message,
                "hint": exc.hint,
                "details": exc.details,
            }
            conn.send(("invalid", problem))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class WorkerProcess:
    """One child process holding a copy of the model; calls are serialized by the caller."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve,
            args=(child, str(path), settings),
            daemon=True,
            name="dockyard-model-worker",
        )
        self.process.start()
        child.close()
        self.ready = threading.Event()
        self.error = ""

    def wait_ready(self) -> bool:
        """Block until the worker has loaded the model (call from a thread)."""
        try:
            kind, _ = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.error = f"the model worker died while loading: {exc}"
            return False
        self.ready.set()
        return bool(kind == "ready")

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        try:
            self.conn.send((inputs, outputs))
            kind, payload = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise RuntimeError(f"the model worker process died: {exc}") from exc
        if kind == "ok":
            result: dict[str, Array] = payload
            return result
        if kind == "invalid":
            raise from_problem(payload)
        raise RuntimeError(payload)

    def close(self) -> None:
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
