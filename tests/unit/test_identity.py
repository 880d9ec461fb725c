"""Replica identities: a holder on this host whose process is gone is known to be dead."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dockyard.control.identity import Identity


def stat(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()


def test_a_holder_is_dead_once_its_process_is_gone_even_before_it_is_reaped() -> None:
    me = Identity("host-a")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidns = me.holder.split("/")[1]
        holder = f"host-a/{pidns}/{child.pid}/{stat(child.pid)[19].decode()}/nonce"
        assert not me.dead(holder)  # alive
        child.kill()
        deadline = time.monotonic() + 5
        while stat(child.pid)[0] != b"Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert me.dead(holder)  # a zombie until its parent reaps it: dead all the same
    finally:
        child.kill()
        child.wait()
    assert me.dead(holder)  # and once reaped
    assert not me.dead(me.holder)  # never itself
    assert not Identity("host-b").dead(holder)  # another host is judged by the lease TTL
    assert not me.dead(None) and not me.dead("garbage")
