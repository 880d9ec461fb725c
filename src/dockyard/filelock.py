"""Advisory file locks (flock): who holds a lock file is alive, whatever its pid."""

from __future__ import annotations

import fcntl
from pathlib import Path


def held(path: Path) -> bool:
    """True while another open file description holds an exclusive lock on ``path``."""
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False
