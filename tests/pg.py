"""A throwaway PostgreSQL cluster from Debian's packages (for the tests and the benchmarks)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_postgres(bindir: Path) -> Iterator[str]:
    """Start a cluster on 127.0.0.1 (as the postgres user when root); yield its URL."""
    data = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
    data.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "dockyard"]
    subprocess.run([*as_user, *initdb, "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data / "db")]
    subprocess.run(
        [*as_user, *ctl, "-w", "-l", str(data / "log"), "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://dockyard@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, *ctl, "-m", "immediate", "stop"], check=False, capture_output=True
        )
        shutil.rmtree(data, ignore_errors=True)
