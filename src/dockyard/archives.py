"""Archives from outside (code uploads, a job's outputs from a cluster): checked member by
member, unpacked only inside their directory, on every Python 3.11."""

from __future__ import annotations

import copy
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# never packed from a code directory (version control, caches, environments)
IGNORED_NAMES = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".DS_Store"}

MAX_MEMBER_NAME_BYTES = 4096
"""Longest path inside an archive, in UTF-8 bytes (Linux's PATH_MAX)."""
MAX_MEMBER_PART_BYTES = 255
"""Longest single file or directory name inside an archive (Linux's NAME_MAX)."""


def unsafe_name(name: str) -> str | None:
    """Why ``name`` may not be a path inside an archive (or a code directory), or None.

    A path is relative, stays inside (no ``..``), is UTF-8 text without control characters
    and fits the file system (MAX_MEMBER_NAME_BYTES, MAX_MEMBER_PART_BYTES per name).
    """
    shown = shown_name(name)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"a name with a control character: {shown}"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return f"a name that is not UTF-8: {shown}"
    path = PurePosixPath(name)
    if path.is_absolute():
        return f"an absolute path: {shown}"
    if ".." in path.parts:
        return f"a path outside the archive: {shown}"
    if len(encoded) > MAX_MEMBER_NAME_BYTES or any(
        len(part.encode()) > MAX_MEMBER_PART_BYTES for part in path.parts
    ):
        return (
            f"a path longer than {MAX_MEMBER_NAME_BYTES} bytes or with a name longer than "
            f"{MAX_MEMBER_PART_BYTES}: {shown}"
        )
    return None


def shown_name(name: str) -> str:
    """``name`` printable: control characters and undecodable bytes escaped, cut at 200."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return text if len(text) <= 200 else text[:199] + "…"


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be unpacked (``"a non-file: NAME"``…), or None if it may."""
    if not (member.isfile() or member.isdir()):
        return (
            f"a non-file: {shown_name(member.name)} "
            "(only regular files and directories may be in it)"
        )
    if reason := unsafe_name(member.name):
        return reason
    if member.isfile() and not PurePosixPath(member.name).parts:
        return f"a file without a name: {shown_name(member.name)!r}"
    return None


@dataclass
class ArchiveCheck:
    """Checks an archive's members one at a time, as they are read.

    Each member must pass :func:`unsafe_member`; there are at most ``max_members`` of them,
    their sizes add up to at most ``max_bytes``, no file comes twice and no path runs through
    a file. The first problem raises ``ValueError("archive holds …")``. The same check runs
    when an archive is accepted and again when it is unpacked.
    """

    max_members: int | None = None
    max_bytes: int | None = None
    members: int = 0
    total: int = 0
    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)

    def add(self, member: tarfile.TarInfo) -> None:
        if reason := unsafe_member(member):
            raise ValueError(f"archive holds {reason}")
        self.members += 1
        if self.max_members is not None and self.members > self.max_members:
            raise ValueError(f"archive holds more than {self.max_members:,} files and directories")
        self.total += max(member.size, 0) if member.isfile() else 0
        if self.max_bytes is not None and self.total > self.max_bytes:
            raise ValueError(
                f"archive holds more than {self.max_bytes >> 20} MiB of files once unpacked"
            )
        parts = PurePosixPath(member.name).parts
        path = "/".join(parts)
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self.files:
                raise ValueError(f"archive holds a path under the file {parent}: {path}")
            self.dirs.add(parent)
        if member.isdir():
            if path in self.files:
                raise ValueError(f"archive holds {path} as a file and as a directory")
            self.dirs.add(path)
        elif path in self.files:
            raise ValueError(f"archive holds {path} twice")
        elif path in self.dirs:
            raise ValueError(f"archive holds {path} as a file and as a directory")
        else:
            self.files.add(path)


def safe_extract(tar: tarfile.TarFile, dest: Path, check: ArchiveCheck | None = None) -> None:
    """Unpack regular files and directories inside ``dest``; anything else raises ValueError.

    Every member passes ``check`` (by default an :class:`ArchiveCheck` without count or size
    limits) before anything is written. Works on every Python 3.11: the ``data`` filter
    (3.11.4+) is used when there is one, and before it the members are checked and cleaned the
    same way (no set-id bits, no group or other write, owned by whoever unpacks).
    """
    check = check or ArchiveCheck()
    members = []
    for member in tar:
        check.add(member)
        members.append(member)
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
