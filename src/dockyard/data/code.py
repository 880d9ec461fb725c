"""Code snapshots: a directory packed into a deterministic tarball, stored by its sha256."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from dockyard.data.artifacts import ArtifactStore
from dockyard.data.files import safe_extract, unsafe_member, walk_files
from dockyard.errors import InvalidRequest, InvalidSpec

MAX_CODE_BYTES = 200 * 1024 * 1024
CODE_PREFIX = "sha256:"


def pack(directory: Path) -> bytes:
    """A reproducible ``tar.gz`` of ``directory``: same files → same bytes → same hash."""
    if not directory.is_dir():
        raise InvalidSpec(
            f"code directory {directory} does not exist",
            hint="spec.code is a directory relative to the YAML file",
        )
    buf = io.BytesIO()
    total = 0
    with tarfile.open(
        fileobj=buf,
        mode="w:gz",
        format=tarfile.PAX_FORMAT,
        compresslevel=6,
    ) as tar:
        for path in walk_files(directory):
            rel = path.relative_to(directory).as_posix()
            info = tarfile.TarInfo(rel)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InvalidSpec(
                    f"code directory {directory}: cannot read {rel}: {exc.strerror}",
                    hint="remove broken links and unreadable files from spec.code",
                ) from exc
            total += len(data)
            if total > MAX_CODE_BYTES:
                raise InvalidSpec(
                    f"code directory {directory} holds more than {MAX_CODE_BYTES >> 20} MiB",
                    hint="keep data out of spec.code: put it in a Dataset or a Volume",
                )
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    # gzip stores a timestamp in its header: zero it so equal trees give equal bytes
    raw = bytearray(buf.getvalue())
    raw[4:8] = b"\0\0\0\0"
    return bytes(raw)


class CodeStore:
    """Uploaded code tarballs (in the artifact store) and their unpacked copies."""

    def __init__(self, artifacts: ArtifactStore, unpack_root: Path) -> None:
        self.artifacts = artifacts
        self.root = unpack_root

    def put(self, data: bytes) -> str:
        if len(data) > MAX_CODE_BYTES:
            raise InvalidRequest("code archive is too large", hint="at most 200 MiB")
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                for member in tar.getmembers():
                    if reason := unsafe_member(member):
                        raise InvalidRequest(f"code archive holds {reason}")
        except tarfile.TarError as exc:
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
                safe_extract(tar, tmp)
            (tmp / ".dockyard-complete").write_text("")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except ValueError as exc:  # only from safe_extract: put() refuses such archives
            raise InvalidRequest(f"code {ref}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
