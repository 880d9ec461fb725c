"""The warm pool's wire: length-prefixed JSON messages with file descriptors over a Unix
socket, and the asking side (``python -m dockyard.serving --warm PATH``), which the pool
itself (``warm.py``) does not need to import.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

MAX_FDS = 3
HEADER = struct.Struct("!I")


def send_message(
    sock: socket.socket, payload: dict[str, object], fds: list[int] | None = None
) -> None:
    data = json.dumps(payload).encode()
    message = HEADER.pack(len(data)) + data
    if fds:
        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(message)


def recv_message(sock: socket.socket) -> tuple[dict[str, object], list[int]]:
    fds = array.array("i")
    msg, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    if not msg:
        raise ConnectionError("closed")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    (length,) = HEADER.unpack_from(msg)
    body = msg[HEADER.size :]
    while len(body) < length:
        more = sock.recv(length - len(body))
        if not more:
            raise ConnectionError("closed")
        body += more
    return json.loads(body[:length]), list(fds)


# -- the asking side -------------------------------------------------------------------------
def run_via_pool(path: Path, argv: list[str]) -> int | None:
    """Run the server in a fork of the pool at ``path``; None if the pool is not there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    send_message(
        sock,
        {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)},
        fds=[sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()],
    )
    reply, _ = recv_message(sock)
    pid = int(str(reply["pid"]))

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            reply, _ = recv_message(sock)
        except InterruptedError:
            continue
        except (ConnectionError, OSError):
            return 1
        if "exit" in reply:
            code = int(str(reply["exit"]))
            return code if code >= 0 else 128 - code
