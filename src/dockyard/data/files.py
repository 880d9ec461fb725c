"""File helpers every data path uses: atomic writes, hashing, manifests, safe unpacking."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dockyard.archives import IGNORED_NAMES
from dockyard.paths import write_private

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_json(path: Path, data: Any) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True).encode())


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
