"""File helpers every data path uses: atomic writes, hashing, manifests, safe unpacking."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK = 1 << 20
IGNORED_NAMES = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".DS_Store"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode())


def walk_files(root: Path) -> list[Path]:
    """Regular files under ``root`` (sorted, following directory symlinks is not done)."""
    if root.is_file():
        return [root]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f not in IGNORED_NAMES)
    return out


def manifest_digest(files: dict[str, dict[str, Any]]) -> str:
    """One checksum for a whole manifest: the same files with the same content → same."""
    lines = "".join(f"{info['sha256']}  {rel}\n" for rel, info in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be unpacked (``"a non-file: NAME"``…), or None if it may."""
    if not (member.isfile() or member.isdir()):
        return f"a non-file: {member.name}"
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return f"an absolute path: {member.name}"
    if ".." in path.parts:
        return f"a path outside the archive: {member.name}"
    return None


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack regular files and directories inside ``dest``; anything else raises ValueError.

    Works on every Python 3.11: the ``data`` filter (3.11.4+) is used when there is one, and
    before it the members are checked and cleaned the same way (no set-id bits, no group or
    other write, owned by whoever unpacks).
    """
    members = tar.getmembers()
    for member in members:
        if reason := unsafe_member(member):
            raise ValueError(f"archive holds {reason}")
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
        return
    tar.extractall(dest, members=[_cleaned(m) for m in members], numeric_owner=True)


def _cleaned(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """What the ``data`` filter would make of a file or directory, for Pythons without it."""
    out = copy.copy(member)
    if member.isdir():
        out.mode = 0o755
    else:
        mode = (member.mode & 0o755) | 0o600
        out.mode = mode if mode & 0o100 else mode & ~0o111
    out.uid, out.gid, out.uname, out.gname = os.geteuid(), os.getegid(), "", ""
    return out
