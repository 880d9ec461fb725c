"""Datasets: fetch a source onto a volume, checksum it, and check it has not changed.

Everything on the volume happens through ``Inside(volume)`` with paths relative to it: a
workload that can write into the volume cannot make the server follow a link out of it.
``file://`` sources are read only from the directories the server's settings allow, and
never through a link.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from dockyard.archives import IGNORED_NAMES
from dockyard.data.files import CHUNK, manifest_digest
from dockyard.errors import ChecksumMismatch, DockyardError, NotFound, UnsafePath
from dockyard.paths import Inside, parts

Progress = Callable[[int, int | None], None]
IGNORED = frozenset(IGNORED_NAMES)
WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _split(rel: str) -> tuple[str, str]:
    *parent, name = parts(rel)
    return "/".join(parent), name


def staging_dir(volume: Inside, target: str) -> str:
    """A fresh, empty directory next to ``target`` (stale ones of a crashed fetch removed)."""
    parent, name = _split(target)
    with volume.dir(parent, create=True) as fd:
        for stale in os.listdir(fd):
            if stale.startswith(f".{name}.staging-"):
                volume.remove(f"{parent}/{stale}" if parent else stale)
        staging = f".{name}.staging-{secrets.token_hex(4)}"
        os.mkdir(staging, 0o755, dir_fd=fd)
    return f"{parent}/{staging}" if parent else staging


def allowed_source(path: Path, allowed: list[Path], source: str) -> Path:
    """The real path of a ``file://`` source, if it lies in a directory the settings allow."""
    real = path.resolve()
    for root in allowed:
        if real == root.resolve() or root.resolve() in real.parents:
            return real
    where = ", ".join(str(p) for p in allowed) or "none are allowed"
    raise UnsafePath(
        f"dataset source {source} is outside the directories the server reads from ({where})",
        hint="ask the operator to add its directory to DOCKYARD_FILE_SOURCES, or upload it",
    )


def fetch(
    source: str,
    volume: Inside,
    staging: str,
    progress: Progress,
    allowed: list[Path],
    *,
    origin: Inside | None = None,
    s3: Callable[[], Any] | None = None,
) -> None:
    """Copy or download ``source`` into the (empty) directory ``staging`` on the volume;
    ``origin`` is the directory a ``volume://`` source names, ``s3`` makes an S3 client."""
    url = urlparse(source)
    if url.scheme == "volume":
        if origin is None or not origin.root.is_dir():
            raise NotFound(f"dataset source {source}: the volume has no such directory")
        files = origin.files(ignore=IGNORED)  # a link in it is refused, not followed
        for n, rel in enumerate(files, 1):
            with origin.open(rel) as src:
                _write(volume, f"{staging}/{rel}", src, lambda _n: None)
            progress(n, len(files))
        return
    if url.scheme == "s3":
        _fetch_s3(source, url.netloc, url.path.strip("/"), volume, staging, progress, s3)
        return
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise DockyardError(
                f"dataset source {source}: file:// URIs name a local path",
                hint="use file:///absolute/path",
            )
        path = Path(unquote(url.path))
        if not path.exists():
            raise NotFound(
                f"dataset source {source} does not exist",
                hint="fix spec.source (file:// paths are absolute on the server)",
            )
        real = allowed_source(path, allowed, source)
        if real.is_dir():
            origin = Inside(real)
            for rel in origin.files(ignore=IGNORED):  # a link in it is refused, not followed
                with origin.open(rel) as src:
                    _write(volume, f"{staging}/{rel}", src, lambda _n: None)
        else:
            with Inside(real.parent).open(real.name) as src:
                _write(volume, f"{staging}/{real.name}", src, lambda _n: None)
        progress(1, 1)
        return
    name = PurePosixPath(unquote(url.path)).name or "data"
    try:
        with httpx.stream("GET", source, follow_redirects=True, timeout=60) as resp:
            if resp.status_code != 200:
                raise DockyardError(
                    f"downloading {source} failed: HTTP {resp.status_code}",
                    hint="check that the URL is right and reachable",
                )
            total = int(resp.headers.get("content-length", 0)) or None
            done = [0]

            def count(n: int) -> None:
                done[0] += n
                progress(done[0], total)

            _write(volume, f"{staging}/{name}", _Chunks(resp.iter_bytes(CHUNK)), count)
    except httpx.HTTPError as exc:
        raise DockyardError(
            f"downloading {source} failed: {exc}", hint="check that the URL is right and reachable"
        ) from exc


def _fetch_s3(
    source: str,
    bucket: str,
    prefix: str,
    volume: Inside,
    staging: str,
    progress: Progress,
    s3: Callable[[], Any] | None,
) -> None:
    """Every object under ``prefix`` (a single object if it names one), keys below the
    prefix becoming paths; a key with ``..`` or an absolute path is refused."""
    if s3 is None:
        raise DockyardError(f"dataset source {source}: S3 is not configured on this server")
    from dockyard.data.backups import explain

    client = s3()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]
        if not keys:
            raise NotFound(f"dataset source {source}: no objects under it")
        total, done = sum(size for _, size in keys), [0]

        def count(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        single = len(keys) == 1 and keys[0][0] == prefix  # the prefix names one object
        for key, _size in keys:
            rel = PurePosixPath(key).name if single else key[len(prefix) :].lstrip("/")
            parts(rel)  # refuses '..' and absolute names
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            _write(volume, f"{staging}/{rel}", body, count)
    except DockyardError:
        raise
    except Exception as exc:  # botocore's, explained
        raise explain(exc, source) from exc


class _Chunks:
    """A readable stream over an iterator of chunks."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)

    def read(self, _size: int = -1) -> bytes:
        return next(self._chunks, b"")


def _write(volume: Inside, rel: str, src: Any, count: Callable[[int], None]) -> None:
    parent, name = _split(rel)
    with volume.dir(parent, create=True) as dfd:
        fd = os.open(name, WRITE, 0o644, dir_fd=dfd)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            count(len(chunk))
        out.flush()
        os.fsync(out.fileno())


def manifest(volume: Inside, rel: str) -> dict[str, dict[str, Any]]:
    """``{relative path: {sha256, size, mtimeNs}}`` for every file under ``rel``."""
    files: dict[str, dict[str, Any]] = {}
    for name in volume.files(rel, ignore=IGNORED):
        files[name] = _hash(volume, f"{rel}/{name}")
    return files


def _hash(volume: Inside, rel: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    with volume.open(rel) as fh:
        st = os.fstat(fh.fileno())
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": st.st_size, "mtimeNs": st.st_mtime_ns}


def commit(
    volume: Inside, staging: str, target: str, expected: str | None, what: str
) -> dict[str, Any]:
    """Checksum ``staging`` and move it to ``target``; refuse if ``expected`` differs."""
    if not volume.exists(staging) and volume.is_dir(target):  # committed before a crash
        files = manifest(volume, target)
        return {"sha256": manifest_digest(files), "files": files}
    try:
        files = manifest(volume, staging)
    except UnsafePath as exc:
        volume.remove(staging)
        raise UnsafePath(f"{what}: {exc.message}", hint="datasets hold regular files only") from exc
    if not files:
        volume.remove(staging)
        raise DockyardError(f"{what} produced no files", hint="check the source or the command")
    digest = manifest_digest(files)
    if expected is not None and digest != expected:
        volume.remove(staging)
        raise ChecksumMismatch(
            f"{what}: checksum {digest} does not match spec.sha256 {expected}",
            hint="the source changed: check it, then update spec.sha256 to accept the new data",
        )
    parent, name = _split(target)
    old = f"{parent}/.{name}.old" if parent else f".{name}.old"
    volume.remove(old)
    if volume.exists(target):
        volume.rename(target, old)  # a planted link moves as a link, and is then removed
    volume.rename(staging, target)
    volume.remove(old)
    return {"sha256": digest, "files": files}


def verify(volume: Inside, target: str, files: dict[str, dict[str, Any]], what: str) -> None:
    """Raise :class:`ChecksumMismatch` if the data on the volume differs from its manifest.

    Files whose size and modification time are unchanged are trusted; others are re-hashed.
    """
    if not volume.is_dir(target):
        raise ChecksumMismatch(
            f"{what}: its directory {volume.path(target)} is gone",
            hint="re-apply the Dataset to fetch it again",
        )
    try:
        present = set(volume.files(target, ignore=IGNORED))
    except UnsafePath as exc:
        raise ChecksumMismatch(
            f"{what}: {exc.message}", hint="re-apply the Dataset to fetch it again"
        ) from exc
    problems = [f"{rel} added" for rel in sorted(present - set(files))]
    problems += [f"{rel} removed" for rel in sorted(set(files) - present)]
    for rel, info in files.items():
        if rel not in present:
            continue
        with volume.open(f"{target}/{rel}") as fh:
            st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != info["size"]:
            problems.append(f"{rel} changed size")
        elif (
            st.st_mtime_ns != info.get("mtimeNs")
            and _hash(volume, f"{target}/{rel}")["sha256"] != info["sha256"]
        ):
            problems.append(f"{rel} changed content")
    if problems:
        raise ChecksumMismatch(
            f"{what} changed on its volume since it was checksummed: {', '.join(problems[:5])}",
            hint="restore the files, or delete and re-apply the Dataset to accept new data",
        )
