"""Datasets: fetch a source onto a volume, checksum it, and check it has not changed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from dockyard.data.files import manifest, manifest_digest, sha256_file, walk_files
from dockyard.errors import ChecksumMismatch, DockyardError, NotFound

Progress = Callable[[int, int | None], None]
MANIFEST = ".dockyard-manifest.json"


def staging_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.staging-*"):  # from a crashed fetch
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))


def fetch(source: str, staging: Path, progress: Progress) -> None:
    """Copy or download ``source`` into the (empty) directory ``staging``."""
    url = urlparse(source)
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
        if path.is_dir():
            shutil.copytree(path, staging, dirs_exist_ok=True)
        else:
            shutil.copy2(path, staging / path.name)
        progress(1, 1)
        return
    name = Path(unquote(url.path)).name or "data"
    try:
        with httpx.stream("GET", source, follow_redirects=True, timeout=60) as resp:
            if resp.status_code != 200:
                raise DockyardError(
                    f"downloading {source} failed: HTTP {resp.status_code}",
                    hint="check that the URL is right and reachable",
                )
            total = int(resp.headers.get("content-length", 0)) or None
            done = 0
            with open(staging / name, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 20):
                    fh.write(chunk)
                    done += len(chunk)
                    progress(done, total)
                fh.flush()
                os.fsync(fh.fileno())
    except httpx.HTTPError as exc:
        raise DockyardError(
            f"downloading {source} failed: {exc}", hint="check that the URL is right and reachable"
        ) from exc


def commit(staging: Path, target: Path, expected: str | None, what: str) -> dict[str, Any]:
    """Checksum ``staging`` and move it to ``target``; refuse if ``expected`` differs."""
    if not staging.exists() and target.exists():  # committed before a crash: just re-read
        files = manifest(target)
        return {"sha256": manifest_digest(files), "files": files}
    files = manifest(staging)
    if not files:
        shutil.rmtree(staging, ignore_errors=True)
        raise DockyardError(f"{what} produced no files", hint="check the source or the command")
    digest = manifest_digest(files)
    if expected is not None and digest != expected:
        shutil.rmtree(staging, ignore_errors=True)
        raise ChecksumMismatch(
            f"{what}: checksum {digest} does not match spec.sha256 {expected}",
            hint="the source changed: check it, then update spec.sha256 to accept the new data",
        )
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return {"sha256": digest, "files": files}


def verify(target: Path, files: dict[str, dict[str, Any]], what: str) -> None:
    """Raise :class:`ChecksumMismatch` if the data on the volume differs from its manifest.

    Files whose size and modification time are unchanged are trusted; others are re-hashed.
    """
    if not target.exists():
        raise ChecksumMismatch(
            f"{what}: its directory {target} is gone", hint="re-apply the Dataset to fetch it again"
        )
    present = {p.relative_to(target).as_posix() for p in walk_files(target)}
    problems = [f"{rel} added" for rel in sorted(present - set(files))]
    problems += [f"{rel} removed" for rel in sorted(set(files) - present)]
    for rel, info in files.items():
        path = target / rel
        if rel not in present:
            continue
        st = path.stat()
        if st.st_size != info["size"]:
            problems.append(f"{rel} changed size")
        elif st.st_mtime_ns != info.get("mtimeNs") and sha256_file(path) != info["sha256"]:
            problems.append(f"{rel} changed content")
    if problems:
        raise ChecksumMismatch(
            f"{what} changed on its volume since it was checksummed: {', '.join(problems[:5])}",
            hint="restore the files, or delete and re-apply the Dataset to accept new data",
        )
