"""Who this control-plane process is, and whether a holder on this host is dead.

A replica's identity names its host, PID namespace, pid and process start time. Leases
record it; a lease whose holder ran on this host and in this PID namespace, and whose
process is gone, is taken over at once (an embedded server restarted after ``kill -9``
does not wait for its old leases to expire). Holders elsewhere are judged by their TTL.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None: no such process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[19].decode() if len(fields) > 19 else "0"


@functools.cache
def this_process() -> str:
    pid = os.getpid()
    host = socket.gethostname()[:60]
    return f"{host}/{_pid_namespace()}/{pid}/{_start_ticks(pid) or '0'}/{uuid.uuid4().hex[:8]}"


def holder_dead(holder: str | None) -> bool:
    """True only when ``holder`` provably ended: same host and PID namespace, process gone."""
    if not holder:
        return False
    parts = holder.split("/")
    if len(parts) != 5 or holder == this_process():
        return False
    host, pidns, pid, ticks, _ = parts
    if host != socket.gethostname()[:60] or pidns != _pid_namespace() or not pid.isdigit():
        return False
    return _start_ticks(int(pid)) != ticks
