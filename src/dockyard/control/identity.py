"""Who this control-plane process is, and whether a lease holder on this host is dead.

A replica's identity names its host (``DOCKYARD_HOST_ID``, default the hostname), PID
namespace, pid and process start time. Leases record it; a lease whose holder ran on this
host and in this PID namespace, and whose process is gone, is taken over at once (an
embedded server restarted after ``kill -9`` does not wait for its old leases to expire).
Holders elsewhere are judged by their TTL.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None: no such process, or only
    its zombie is left)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields and fields[0] in (b"Z", b"X"):  # dead, not reaped yet
        return None
    return fields[19].decode() if len(fields) > 19 else "0"


@dataclass(frozen=True)
class Identity:
    host: str = field(default_factory=socket.gethostname)
    holder: str = field(init=False)

    def __post_init__(self) -> None:
        host = self.host.replace("/", "_")[:60]
        pid = os.getpid()
        holder = (
            f"{host}/{_pid_namespace()}/{pid}/{_start_ticks(pid) or '0'}/{uuid.uuid4().hex[:8]}"
        )
        object.__setattr__(self, "holder", holder)

    def dead(self, holder: str | None) -> bool:
        """True only when ``holder`` provably ended: this host and PID namespace, gone."""
        if not holder or holder == self.holder:
            return False
        parts = holder.split("/")
        if len(parts) != 5:
            return False
        host, pidns, pid, ticks, _ = parts
        mine = self.holder.split("/")
        if (host, pidns) != (mine[0], mine[1]) or not pid.isdigit():
            return False
        return _start_ticks(int(pid)) != ticks
