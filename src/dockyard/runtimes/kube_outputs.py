"""A Kubernetes job's outputs, back on the server through its pod log.

The pod runs its command under ``COLLECT``: after the command, the outputs directory follows
the log as a base64 tar.gz behind ``OUTPUTS_MARKER``, and the shell exits with the command's
code (passing SIGTERM on to it). The server reads the log with the pod log API and unpacks the
outputs into the job's output directory (:func:`unpack_outputs`, checked like every archive),
so no volume needs to be shared between the cluster and the server. ``dockyard logs`` shows
the log before the marker (:func:`log_of`).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import tarfile
from pathlib import Path

from dockyard.archives import ArchiveCheck, safe_extract
from dockyard.runtimes.containers import OUTPUT

OUTPUTS_MARKER = "==== dockyard: the outputs follow (tar.gz, base64) ===="
COLLECT = (
    '"$@" & pid=$!; '
    "trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 143' TERM INT; "
    "wait $pid; code=$?; "
    f'printf "\\n%s\\n" "{OUTPUTS_MARKER}"; '
    f"tar -C {OUTPUT} -czf - . 2>/dev/null | base64; "
    "exit $code"
)
MAX_OUTPUT_FILES = 10_000
_SPLIT = b"\n" + OUTPUTS_MARKER.encode() + b"\n"
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


def log_of(log: bytes) -> bytes:
    """The command's own log, without the outputs that follow it."""
    return log.split(_SPLIT, 1)[0]


def unpack_outputs(log: bytes, target: Path, limit: int) -> str:
    """Unpack the outputs that follow ``log``'s marker into ``target``; says what it unpacked.
    ValueError when there are none or they are damaged or unsafe."""
    _, found, rest = log.partition(_SPLIT)
    if not found:
        raise ValueError("the pod log has no outputs (a node that runs no program: kwok?)")
    # only the base64 lines: a child process still writing after its parent ended may add others
    lines = [line for line in rest.split() if _BASE64.fullmatch(line)]
    try:
        data = base64.b64decode(b"".join(lines), validate=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            check = ArchiveCheck(max_members=MAX_OUTPUT_FILES, max_bytes=limit)
            target.mkdir(parents=True, exist_ok=True)
            safe_extract(tar, target, check)
    except (binascii.Error, tarfile.TarError, EOFError) as exc:
        raise ValueError(f"the outputs in the pod log are damaged: {exc}") from exc
    return f"{check.members} files and directories, {check.total} bytes"
