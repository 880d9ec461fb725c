"""A content-addressed chunk store: each chunk kept once, named by the SHA-256 of its bytes.

A stored chunk is one header byte (``RAW`` or ``ZSTD``) and the payload; chunks that do not
shrink under zstd are kept raw. Every read checks the bytes against the name: a damaged
chunk raises ``ChunkDamaged`` instead of handing back a wrong byte. Writes go to a temporary
name and are renamed into place, so a crash leaves no half chunk under a real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import zstandard

from dockyard.errors import ChunkDamaged

RAW = b"\x00"
ZSTD = b"\x01"
LEVEL = 3
"""zstd level for chunks: ~1 GB/s on one core, close to restic's ``auto``."""
_LOCAL = threading.local()


def digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_LOCAL, "zc"):
        _LOCAL.zc = zstandard.ZstdCompressor(level=LEVEL)
        _LOCAL.zd = zstandard.ZstdDecompressor()
    return _LOCAL.zc  # type: ignore[no-any-return]


def _fast() -> zstandard.ZstdCompressor:
    if not hasattr(_LOCAL, "fast"):
        _LOCAL.fast = zstandard.ZstdCompressor(level=1)
    return _LOCAL.fast  # type: ignore[no-any-return]


def _decompressor() -> zstandard.ZstdDecompressor:
    _compressor()
    return _LOCAL.zd  # type: ignore[no-any-return]


SAMPLE = 64 * 1024


def encode(data: bytes | memoryview) -> bytes:
    """The stored form of ``data``: compressed when that saves at least 1/32. A large chunk
    whose first 64 KiB do not shrink at zstd's fastest level (weights, archives, media) is
    kept raw without compressing the rest."""
    if len(data) > 2 * SAMPLE:
        probe = _fast().compress(data[:SAMPLE])
        if len(probe) + len(probe) // 32 >= SAMPLE:
            return RAW + bytes(data)
    packed = _compressor().compress(data)
    if len(packed) + len(packed) // 32 < len(data):
        return ZSTD + packed
    return RAW + bytes(data)


def decode(name: str, stored: bytes, what: str = "") -> bytes:
    """The chunk's bytes, checked against its name; ``what`` says whose chunk it is."""
    where = f"{what}: " if what else ""
    try:
        if stored[:1] == RAW:
            data = stored[1:]
        elif stored[:1] == ZSTD:
            data = _decompressor().decompress(stored[1:])
        else:
            raise ChunkDamaged(f"{where}chunk {name[:16]} has an unknown header")
    except zstandard.ZstdError as exc:
        raise ChunkDamaged(f"{where}chunk {name[:16]} does not decompress ({exc})") from exc
    if digest(data) != name:
        raise ChunkDamaged(
            f"{where}chunk {name[:16]} is damaged: its bytes no longer match their checksum"
        )
    return data


class ChunkStore:
    """Chunks under ``root/chunks/<first two hex digits>/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.chunks = root / "chunks"

    def path(self, name: str) -> Path:
        return self.chunks / name[:2] / name

    def has(self, name: str) -> bool:
        return self.path(name).exists()

    def put(self, data: bytes | memoryview) -> tuple[str, int]:
        """Store ``data`` unless already there: (its name, bytes newly written)."""
        name = digest(data)
        path = self.path(name)
        if path.exists():
            return name, 0
        stored = encode(data)
        write_atomic(path, stored)
        return name, len(stored)

    def put_stored(self, name: str, stored: bytes, what: str = "") -> None:
        """Keep a chunk fetched from elsewhere, after checking it."""
        decode(name, stored, what)
        if not self.has(name):
            write_atomic(self.path(name), stored)

    def read_stored(self, name: str, what: str = "") -> bytes:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            where = f"{what}: " if what else ""
            raise ChunkDamaged(f"{where}chunk {name[:16]} is missing from the store") from None

    def get(self, name: str, what: str = "") -> bytes:
        return decode(name, self.read_stored(name, what), what)

    def names(self) -> Iterator[str]:
        if not self.chunks.is_dir():
            return
        for sub in sorted(self.chunks.iterdir()):
            for entry in os.scandir(sub):
                if not entry.name.startswith("."):
                    yield entry.name

    def remove(self, name: str) -> int:
        path = self.path(name)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def stored_bytes(self) -> int:
        total = 0
        if self.chunks.is_dir():
            for sub in self.chunks.iterdir():
                total += sum(e.stat().st_size for e in os.scandir(sub))
        return total


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
