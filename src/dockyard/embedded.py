"""The embedded control plane: started on demand by the CLI/SDK, one per ``DOCKYARD_HOME``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dockyard import filelock
from dockyard.errors import ServerUnavailable
from dockyard.settings import Settings

ALREADY_RUNNING = 6  # the exit code of a server whose home another server holds (api.server)
# written by ``server stop --stop-workloads`` for the server's shutdown to read: stop the
# workloads of clusters too (they outlive the control plane otherwise)
STOP_ALL = "stop-all-workloads"


def stop_all_requested(settings: Settings) -> bool:
    """Did the stop that ends this server ask to stop every workload? (read once)"""
    flag = settings.home / STOP_ALL
    asked = flag.exists()
    flag.unlink(missing_ok=True)
    return asked


def _lock_held(home: Path) -> bool:
    return filelock.held(home / "server.lock")


def info(settings: Settings) -> dict[str, object] | None:
    """``{pid, url, home}`` of the running embedded server, or None."""
    try:
        data = json.loads(settings.server_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not _lock_held(settings.home):
        return None
    return data


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_running(settings: Settings, timeout: float = 90.0) -> str:
    """The URL of the embedded server, starting it first if it is not running."""
    current = info(settings)
    if current is not None and _healthy(str(current["url"])):
        return str(current["url"])
    settings.home.mkdir(parents=True, exist_ok=True)
    log_path = settings.home / "server.log"
    env = {**os.environ, "DOCKYARD_HOME": str(settings.home)}
    env.pop("DOCKYARD_URL", None)
    if settings.database_url:
        env["DOCKYARD_DATABASE_URL"] = settings.database_url
    with open(log_path, "ab") as log:
        before = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.api"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = info(settings)
        if current is not None and _healthy(str(current["url"])):
            return str(current["url"])
        code = proc.poll()
        if code is not None and code != ALREADY_RUNNING:  # another won the race: wait for it
            raise ServerUnavailable(
                f"the embedded server failed to start: {_why(log_path, before)}",
                hint=f"see {log_path}",
            )
        time.sleep(0.05)
    raise ServerUnavailable(
        f"the embedded server did not answer within {timeout:.0f}s", hint=f"see {log_path}"
    )


def _why(log_path: Path, since: int) -> str:
    """What a server that did not start said: its one line (``dockyard: …``), else the end
    of what it wrote."""
    with open(log_path, "rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").strip().splitlines()
    said = [line.removeprefix("dockyard: ") for line in lines if line.startswith("dockyard: ")]
    return said[-1] if said else " | ".join(lines[-5:])


def stop(settings: Settings, timeout: float = 90.0, workloads: bool = False) -> bool:
    """Stop the embedded server and what it started on this machine (with ``workloads``, on
    clusters too); False if none was running."""
    current = info(settings)
    if current is None:
        return False
    if workloads:
        (settings.home / STOP_ALL).touch()
    pid = int(str(current["pid"]))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _lock_held(settings.home) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _lock_held(settings.home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True
