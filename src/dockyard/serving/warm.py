"""A warm pool for model servers: an interpreter that has already imported the heavy parts.

Starting a model server is mostly imports (scikit-learn alone takes over a second); the
model file itself loads in milliseconds. ``python -m dockyard.serving.warm --socket PATH``
imports the server and the frameworks once and waits on a Unix socket. ``python -m
dockyard.serving --warm PATH ...`` then asks it to fork a ready interpreter that runs the
server with the given arguments, its standard streams and working directory; the asking
process stays as the server's stand-in: it forwards SIGTERM/SIGINT and exits with the
server's exit code, so supervisors (the shim, systemd, a terminal) see an ordinary process.

The pool is single-threaded (a selector loop, SIGCHLD through a wake-up fd), so forking it is
safe. If the socket does not answer, the server starts cold in the asking process instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import selectors
import signal
import socket
import sys
from pathlib import Path

from dockyard.serving.pool import recv_message as _recv
from dockyard.serving.pool import send_message as _send


# -- the pool ------------------------------------------------------------------------------
def _child(
    conn: socket.socket, listener: socket.socket, request: dict[str, object], fds: list[int]
) -> None:
    """In the forked interpreter: become the requested server."""
    listener.close()
    conn.close()
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    sys.argv = ["dockyard-serve", *request["argv"]]  # type: ignore[misc]
    code = 0
    try:
        from dockyard.serving.cli import main

        main(list(request["argv"]))  # type: ignore[call-overload]
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # pragma: no cover - reported on stderr
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve_pool(path: Path, preload: list[str]) -> None:
    import uvicorn.loops.uvloop
    import uvicorn.protocols.http.httptools_impl  # noqa: F401

    import dockyard.serving.app
    import dockyard.serving.cli
    import dockyard.serving.repository  # noqa: F401 - imported now so that children need not

    for name in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    listener.setblocking(False)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "signal")
    children: dict[int, socket.socket] = {}
    print(
        f"dockyard warm pool ready on {path} (preloaded: {', '.join(preload) or 'none'})",
        flush=True,
    )
    while not stopping:
        for key, _ in selector.select(timeout=1):
            if key.data == "accept":
                with contextlib.suppress(BlockingIOError):
                    conn, _ = listener.accept()
                    conn.setblocking(True)
                    try:
                        request, fds = _recv(conn)
                    except (ConnectionError, OSError, ValueError):
                        conn.close()
                        continue
                    pid = os.fork()
                    if pid == 0:
                        _child(conn, listener, request, fds)
                    for fd in fds:
                        os.close(fd)
                    _send(conn, {"pid": pid})
                    children[pid] = conn
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                _reap(children)
    listener.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="dockyard-warm-pool")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument(
        "--preload",
        default="numpy,sklearn.linear_model,sklearn.ensemble,joblib",
        help="comma-separated modules to import up front",
    )
    args = parser.parse_args()
    serve_pool(args.socket, [m for m in args.preload.split(",") if m])


if __name__ == "__main__":
    main()
