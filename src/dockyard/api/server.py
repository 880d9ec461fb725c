"""Run the control plane.

``python -m dockyard.api`` is the embedded server that ``dockyard server start`` spawns: one
per ``DOCKYARD_HOME``, holding ``server.lock`` for its whole life and writing ``server.json``
(pid, url) once it answers requests; stopping it stops what it started.

``dockyard server run`` (``replica=True``) is a control-plane replica in the foreground, what
a container or a systemd unit runs: any number of them may share one database (and one
``DOCKYARD_HOME``); every replica serves the API, the one holding the leader lease runs the
loop, and stopping a replica leaves the workloads to the next leader.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from dockyard import home_settings
from dockyard.api.app import build_state, create_app
from dockyard.data.files import atomic_write_json
from dockyard.embedded import ALREADY_RUNNING, STOP_ALL
from dockyard.errors import DockyardError
from dockyard.settings import Settings
from dockyard.store.db import Store


def settle(settings: Settings) -> Settings:
    """The home's kept settings under the environment's; a change of runtime under
    resources refused (home_settings). They are written back once the server started."""
    settings = home_settings.with_home(settings)
    store = Store(settings.db_url)  # (a missing driver is a DockyardError: one line)
    try:
        count = store.resource_count()
    except SQLAlchemyError:  # unreadable now: a runtime change is refused as if it had some
        count = -1
    finally:
        store.close()
    home_settings.check(settings, count)
    return settings


# exit codes of a server that did not start (uvicorn's own startup failure is 3)
# ALREADY_RUNNING (6, embedded): another server holds this home, the client waits for it
CANNOT_START = 5  # one line on stderr says why (a setting, a missing extra, the store)


def _refused(exc: DockyardError) -> int:
    hint = f" (hint: {exc.hint})" if exc.hint else ""
    print(f"dockyard: {exc.message}{hint}", file=sys.stderr)
    return CANNOT_START


def serve(settings: Settings, replica: bool = False) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / STOP_ALL).unlink(missing_ok=True)  # a stop meant for an earlier server
    try:
        settings = settle(settings)
    except DockyardError as exc:
        return _refused(exc)
    if not replica:
        lock = open(settings.home / "server.lock", "a+")  # noqa: SIM115 - held while serving
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(f"dockyard: a server is already running for {settings.home}", file=sys.stderr)
            return ALREADY_RUNNING
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        print(
            f"dockyard: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 4
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"

    def ready() -> None:
        if replica:
            print(f"Dockyard control plane at {url} (home {settings.home})", flush=True)
        else:
            info = {"pid": os.getpid(), "url": url, "home": str(settings.home)}
            atomic_write_json(settings.server_file, info)

    try:  # what keeps it from starting (a missing extra, the store) is one line, not a trace
        state = build_state(settings)
    except DockyardError as exc:
        return _refused(exc)
    home_settings.keep(settings)  # it starts: what it uses is the home's from now on
    app = create_app(settings, on_ready=ready, stop_workloads=not replica, state=state)

    config = uvicorn.Config(
        app, log_level=settings.log_level, access_log=False, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        if not replica:
            with contextlib.suppress(OSError):
                info = json.loads(settings.server_file.read_text())
                if info.get("pid") == os.getpid():
                    settings.server_file.unlink()
    return 0


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(serve(Settings()))


if __name__ == "__main__":
    main()
