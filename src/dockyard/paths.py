"""Paths a workload could have written, handled without following its links out of their root.

Every server-side file operation under a directory that a workload can write into — a
volume, a job's output directory, a dataset's staging directory — goes through ``Inside``:
each component below the root is opened relative to its parent's descriptor with
``O_NOFOLLOW`` (openat-style), so a planted link, or one swapped in between a check and the
use, is refused (``UnsafePath``) instead of followed. Nothing is ever resolved to a string
and opened again. Links inside such a directory are never followed: reads refuse them,
sizes skip them, deletes remove the link itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from dockyard.errors import UnsafePath

DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def parts(rel: str | PurePosixPath) -> list[str]:
    """The components of a relative path; an absolute one or ``..`` is refused."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafePath(f"'{rel}' is not a path inside its directory")
    return [p for p in path.parts if p not in ("", ".")]


def _refuse(exc: OSError, where: str) -> UnsafePath:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return UnsafePath(f"{where} is a link or not a directory: Dockyard does not follow it")
    return UnsafePath(f"{where}: {exc.strerror}")


def _chown_below(fd: int, uid: int, gid: int) -> None:
    for entry in os.scandir(fd):
        os.chown(entry.name, uid, gid, dir_fd=fd, follow_symlinks=False)
        if entry.is_dir(follow_symlinks=False):
            try:
                child = os.open(entry.name, DIR, dir_fd=fd)
            except OSError:
                continue  # swapped for a link meanwhile: not followed
            try:
                _chown_below(child, uid, gid)
            finally:
                os.close(child)


def write_private(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with mode 0600 (the new file is never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Inside:
    """A directory whose contents a workload controls; ``root`` itself is the server's."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str = "") -> Path:
        return self.root.joinpath(*parts(rel))

    @contextlib.contextmanager
    def dir(self, rel: str = "", create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``rel`` (created when ``create``), never via a link."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.root, DIR)
        except OSError as exc:
            raise _refuse(exc, str(self.root)) from exc
        try:
            walked = self.root
            for part in parts(rel):
                walked = walked / part
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, DIR, dir_fd=fd)
                except OSError as exc:
                    raise _refuse(exc, str(walked)) from exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def mkdirs(self, rel: str = "") -> Path:
        """Create ``rel`` (and its parents) inside the root; its path."""
        with self.dir(rel, create=True):
            pass
        return self.path(rel)

    def exists(self, rel: str) -> bool:
        *parent, name = parts(rel) or [""]
        try:
            with self.dir("/".join(parent)) as fd:
                os.stat(name, dir_fd=fd, follow_symlinks=False) if name else None
        except (UnsafePath, FileNotFoundError):
            return False
        return True

    def is_dir(self, rel: str) -> bool:
        try:
            with self.dir(rel):
                return True
        except UnsafePath:
            return False

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO]:
        """Read the regular file ``rel``; a link, a FIFO or a device is refused."""
        *parent, name = parts(rel)
        with self.dir("/".join(parent)) as dfd:
            try:
                fd = os.open(name, FILE, dir_fd=dfd)
            except OSError as exc:
                raise _refuse(exc, str(self.path(rel))) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{self.path(rel)} is not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            yield fh

    def read_bytes(self, rel: str, limit: int) -> bytes:
        with self.open(rel) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise UnsafePath(f"{self.path(rel)} is larger than {limit} bytes")
        return data

    def files(
        self, rel: str = "", links: str = "refuse", ignore: frozenset[str] = frozenset()
    ) -> list[str]:
        """Regular files under ``rel`` (relative to it, sorted); a link is refused, or
        skipped with ``links="skip"``; nothing is followed; names in ``ignore`` are left out."""
        out: list[str] = []
        with self.dir(rel) as fd:
            self._walk(fd, PurePosixPath(), out, links, self.path(rel), ignore)
        return sorted(out)

    def _walk(
        self,
        fd: int,
        at: PurePosixPath,
        out: list[str],
        links: str,
        base: Path,
        ignore: frozenset[str],
    ) -> None:
        for entry in sorted(os.scandir(fd), key=lambda e: e.name):
            if entry.name in ignore:
                continue
            rel = at / entry.name
            if entry.is_symlink():
                if links == "skip":
                    continue
                raise UnsafePath(f"{base / rel} is a link: Dockyard does not follow it")
            if entry.is_dir(follow_symlinks=False):
                try:
                    child = os.open(entry.name, DIR, dir_fd=fd)
                except OSError as exc:
                    raise _refuse(exc, str(base / rel)) from exc
                try:
                    self._walk(child, rel, out, links, base, ignore)
                finally:
                    os.close(child)
            elif entry.is_file(follow_symlinks=False):
                out.append(rel.as_posix())
            elif links != "skip":
                raise UnsafePath(f"{base / rel} is not a regular file")

    def usage(self, rel: str = "") -> tuple[int, int]:
        """(files, bytes) under ``rel``, links skipped."""
        count = size = 0
        with self.dir(rel) as fd:
            stack = [fd]
            opened: list[int] = []
            try:
                while stack:
                    current = stack.pop()
                    for entry in os.scandir(current):
                        if entry.is_symlink():
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            with contextlib.suppress(OSError):
                                child = os.open(entry.name, DIR, dir_fd=current)
                                opened.append(child)
                                stack.append(child)
                        elif entry.is_file(follow_symlinks=False):
                            count += 1
                            size += entry.stat(follow_symlinks=False).st_size
            finally:
                for child in opened:
                    os.close(child)
        return count, size

    def remove(self, rel: str) -> None:
        """Delete ``rel`` (a tree, a file or a link — the link itself) if it exists."""
        *parent, name = parts(rel)
        try:
            with self.dir("/".join(parent)) as fd:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=fd)  # descriptor-based: follows nothing
                else:
                    os.unlink(name, dir_fd=fd)
        except UnsafePath:
            return  # a parent is a link: nothing of ours is behind it

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` within the root (a link moves as a link)."""
        *sp, sn = parts(src)
        *dp, dn = parts(dst)
        with self.dir("/".join(sp)) as sfd, self.dir("/".join(dp)) as dfd:
            os.replace(sn, dn, src_dir_fd=sfd, dst_dir_fd=dfd)

    def chown(self, uid: int, gid: int, deep: bool = True) -> None:
        """Hand the directory (and with ``deep`` all below it) to ``uid:gid``, a container's
        user; a link is changed itself, never what it points at."""
        with self.dir() as fd:
            os.chown(fd, uid, gid)
            if deep:
                _chown_below(fd, uid, gid)

    def check(self, rel: str = "") -> Path:
        """``rel``'s path after checking that no component of it is a link (for paths handed
        to a runtime, right before it uses them)."""
        with self.dir(rel):
            return self.path(rel)
