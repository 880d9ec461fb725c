"""A Kubernetes job's outputs, unpacked on the server from what a collect helper served.

A job writes ``$DOCKYARD_OUTPUT_DIR`` onto a claim of its own (a dataset preparation onto its
dataset's claim); once it ended, a helper pod serves that directory as a tar.gz through the API
server's pod proxy (``kube_helpers``), and the server unpacks it into the job's output
directory, checked like every archive: regular files and directories only, at most
``MAX_OUTPUT_FILES`` members and ``limit`` bytes.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from dockyard.archives import ArchiveCheck, safe_extract

MAX_OUTPUT_FILES = 10_000


def unpack_outputs(archive: Path, target: Path, limit: int) -> str:
    """Unpack ``archive`` into ``target``; says what it unpacked. ValueError when it is
    damaged or unsafe."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            check = ArchiveCheck(max_members=MAX_OUTPUT_FILES, max_bytes=limit)
            target.mkdir(parents=True, exist_ok=True)
            safe_extract(tar, target, check)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"the outputs are damaged: {exc}") from exc
    return f"{check.members} files and directories, {check.total} bytes"
