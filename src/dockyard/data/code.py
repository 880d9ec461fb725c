"""Code snapshots: a directory packed into a deterministic tarball, stored by its sha256.

Both ends are bounded. :func:`pack` (the client) reads only regular files and directories:
it refuses symbolic links (which could pull in any file of the machine) and FIFOs, sockets
and devices (which could block or never end), names the path that is wrong, and stops at
MAX_CODE_FILES entries or MAX_CODE_BYTES before reading anything. :meth:`CodeStore.put` (the
server) accepts an archive only if it is a tar.gz of at most MAX_CODE_BYTES whose members
pass :class:`~dockyard.archives.ArchiveCheck` (regular files and directories, relative
paths without ``..``, at most MAX_CODE_FILES of them and MAX_CODE_BYTES once unpacked), while
decompressing no more than MAX_CODE_STREAM_BYTES (a gzip bomb stops there); unpacking runs
the same check again.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Protocol

from dockyard.archives import IGNORED_NAMES, ArchiveCheck, safe_extract, shown_name, unsafe_name
from dockyard.data.artifacts import ArtifactStore
from dockyard.errors import InvalidRequest, InvalidSpec

MAX_CODE_BYTES = 200 * 1024 * 1024
"""Largest code snapshot: the archive, and the files in it once unpacked (200 MiB)."""
MAX_CODE_FILES = 10_000
"""Most files and directories in a code directory, and members in a code archive."""
MAX_CODE_STREAM_BYTES = MAX_CODE_BYTES + 32 * 1024 * 1024
"""Most bytes a code archive may decompress to: its files plus tar headers (232 MiB)."""
CODE_PREFIX = "sha256:"
_PACK_HINT = "spec.code holds regular files and directories only: no links, FIFOs or devices"


def check(max_members: int = MAX_CODE_FILES, max_bytes: int = MAX_CODE_BYTES) -> ArchiveCheck:
    """The check every code archive passes, when it is uploaded and when it is unpacked."""
    return ArchiveCheck(max_members=max_members, max_bytes=max_bytes)


def code_files(directory: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of the files to pack, in a fixed order; refuses what is unsafe.

    Directories are walked top-down (a directory's files, sorted, then its subdirectories,
    sorted), skipping IGNORED_NAMES, without following any link. Sizes are added up from
    ``lstat`` so that nothing is read when the total is too large.
    """
    out: list[tuple[str, Path]] = []
    entries = total = 0
    stack: list[tuple[Path, str]] = [(directory, "")]
    while stack:
        current, prefix = stack.pop()
        try:
            with os.scandir(current) as it:
                children = sorted((e for e in it if e.name not in IGNORED_NAMES), key=_name)
        except OSError as exc:
            raise _refuse(directory, f"cannot list {prefix or '.'}: {exc.strerror}") from exc
        subdirs: list[tuple[Path, str]] = []
        for entry in children:
            rel = prefix + entry.name
            if reason := unsafe_name(rel):
                raise _refuse(directory, f"holds {reason}")
            entries += 1
            if entries > MAX_CODE_FILES:
                raise InvalidSpec(
                    f"code directory {directory} holds more than {MAX_CODE_FILES:,} files and "
                    "directories",
                    hint="keep data out of spec.code: put it in a Dataset or a Volume",
                )
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise _refuse(directory, f"cannot read {rel}: {exc.strerror}") from exc
            if stat.S_ISLNK(st.st_mode):
                raise _refuse(directory, f"{rel} is a symbolic link; links are not packed")
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
                if total > MAX_CODE_BYTES:
                    raise InvalidSpec(
                        f"code directory {directory} holds more than {MAX_CODE_BYTES >> 20} MiB",
                        hint="keep data out of spec.code: put it in a Dataset or a Volume",
                    )
                out.append((rel, Path(entry.path)))
            else:
                raise _refuse(
                    directory, f"{rel} is a {_kind(st.st_mode)}, not a regular file or directory"
                )
        stack.extend(reversed(subdirs))
    return out


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"  # pragma: no cover - doors, whiteouts


def _refuse(directory: Path, what: str) -> InvalidSpec:
    return InvalidSpec(f"code directory {directory}: {shown_name(what)}", hint=_PACK_HINT)


def _read_regular(directory: Path, rel: str, path: Path) -> tuple[bytes, bool]:
    """The bytes of a file known to be regular, without following a link swapped in meanwhile
    and without blocking on a FIFO; and whether it is executable."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _refuse(directory, f"cannot read {rel}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(directory, f"{rel} is not a regular file")
        data = fh.read(st.st_size + 1)
    if len(data) != st.st_size:
        raise _refuse(directory, f"{rel} changed while it was packed; try again")
    return data, os.access(path, os.X_OK)


def pack(directory: Path) -> bytes:
    """A reproducible ``tar.gz`` of ``directory``: same files → same bytes → same hash."""
    if not directory.is_dir():
        raise InvalidSpec(
            f"code directory {directory} does not exist",
            hint="spec.code is a directory relative to the YAML file",
        )
    files = code_files(directory)
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf,
        mode="w:gz",
        format=tarfile.PAX_FORMAT,
        compresslevel=6,
    ) as tar:
        for rel, path in files:
            data, executable = _read_regular(directory, rel, path)
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if executable else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    # gzip stores a timestamp in its header: zero it so equal trees give equal bytes
    raw = bytearray(buf.getvalue())
    raw[4:8] = b"\0\0\0\0"
    return bytes(raw)


class _Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Capped(io.RawIOBase):
    """A reader that fails once more than ``limit`` bytes came through (a gzip bomb)."""

    def __init__(self, inner: _Reader, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(min(len(buffer), self.limit - self.count + 1))
        self.count += len(data)
        if self.count > self.limit:
            shown = f"{self.limit >> 20} MiB" if self.limit >= 1 << 20 else f"{self.limit:,} bytes"
            raise ValueError(f"archive unpacks to more than {shown} (files and headers)")
        buffer[: len(data)] = data
        return len(data)


class CodeStore:
    """Uploaded code tarballs (in the artifact store) and their unpacked copies."""

    def __init__(self, artifacts: ArtifactStore, unpack_root: Path) -> None:
        self.artifacts = artifacts
        self.root = unpack_root

    def put(self, data: bytes) -> str:
        """Store a code archive after checking all of it (streamed, bounded); its reference."""
        if len(data) > MAX_CODE_BYTES:
            raise InvalidRequest(
                "code archive is too large", hint=f"at most {MAX_CODE_BYTES >> 20} MiB"
            )
        try:
            archive = check()
            gz = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
            stream = _Capped(gz, MAX_CODE_STREAM_BYTES)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    archive.add(member)
        except ValueError as exc:
            raise InvalidRequest(
                f"code {exc}",
                hint=f"a code archive holds at most {MAX_CODE_FILES:,} regular files and "
                f"directories, {MAX_CODE_BYTES >> 20} MiB unpacked, with relative paths",
            ) from exc
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise InvalidRequest(f"code archive is not a tar.gz file: {exc}") from exc
        return CODE_PREFIX + self.artifacts.put_bytes(data)

    def exists(self, ref: str) -> bool:
        return ref.startswith(CODE_PREFIX) and self.artifacts.has(ref[len(CODE_PREFIX) :])

    def unpacked(self, ref: str) -> Path:
        """A directory with the code of ``ref`` (unpacked once, verified against its hash)."""
        digest = ref.removeprefix(CODE_PREFIX)
        dest = self.root / digest[:16]
        if (dest / ".dockyard-complete").exists():
            return dest
        blob = self.artifacts.verified(digest)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{digest[:16]}."))
        try:
            with tarfile.open(blob, mode="r:gz") as tar:
                safe_extract(tar, tmp, check())
            (tmp / ".dockyard-complete").write_text("")
            if (dest / ".dockyard-complete").exists():
                return dest  # another start unpacked it meanwhile: keep theirs (in use)
            if dest.exists():
                shutil.rmtree(dest)  # a half copy of a crashed unpack
            os.replace(tmp, dest)
        except ValueError as exc:  # only from safe_extract: put() refuses such archives
            raise InvalidRequest(f"code {ref}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
