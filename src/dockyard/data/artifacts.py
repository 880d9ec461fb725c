"""The content-addressed artifact store: blobs named by their sha256, verified on read."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.data.files import CHUNK, sha256_file
from dockyard.errors import ChecksumMismatch, NotFound


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put_stream(self, source: BinaryIO) -> tuple[str, int]:
        """Copy an open file in (hashing while copying); its sha256 and size."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as dst:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            return self._commit(Path(tmp), digest.hexdigest()), size
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> str:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as dst:
                dst.write(data)
                dst.flush()
                os.fsync(dst.fileno())
            return self._commit(Path(tmp), hashlib.sha256(data).hexdigest())
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _commit(self, tmp: Path, digest: str) -> str:
        final = self.path(digest)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        return digest

    def verified(self, digest: str) -> Path:
        """The blob's path after checking that its content still has ``digest``."""
        path = self.path(digest)
        if not path.exists():
            raise NotFound(
                f"artifact sha256:{digest} is missing from the store",
                hint=f"the artifact store at {self.root} was modified",
            )
        actual = sha256_file(path)
        if actual != digest:
            raise ChecksumMismatch(
                f"artifact sha256:{digest} is corrupt (its content hashes to {actual})",
                hint="restore the artifact store from a backup or register the model again",
            )
        return path

    def materialize(self, files: dict[str, dict[str, Any]], dest: Path) -> Path:
        """Copy files out of the store (verified) into ``dest``; atomic per directory."""
        if (dest / ".dockyard-complete").exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
        try:
            for rel, info in files.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.verified(info["sha256"]), target)
            (tmp / ".dockyard-complete").write_text("")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return dest
