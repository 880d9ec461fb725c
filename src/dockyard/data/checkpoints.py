"""A job's checkpoint directory before an attempt starts: only complete checkpoints are offered.

The protocol is ``dockyard.checkpoints``'s: ``<name>/`` is a complete checkpoint when
``<name>/.complete`` is a regular file. Before each attempt the directory is ``scan``ned
through ``Inside`` (nothing a workload planted is followed), ``select`` (pure) decides, and
``prune`` removes:

- directories without their marker (half-written), with a name that is not a checkpoint's
  (``.tmp-…``), and complete ones beyond the newest ``keep`` (names sort as strings);
- links and anything that is neither a directory nor a regular file (the entry itself goes,
  never what a link points at).

Regular files at the top are the workload's own and stay. The newest complete checkpoint left
is the one named to the next attempt (``$DOCKYARD_CHECKPOINT_LATEST``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dockyard.checkpoints import MARKER, is_name
from dockyard.paths import DIR, Inside

Kind = Literal["dir", "file", "link", "other"]


@dataclass(frozen=True)
class Entry:
    """What the checkpoint directory holds at its top: a name, its type, and (for a
    directory) whether its marker is a regular file."""

    name: str
    kind: Kind
    complete: bool = False


@dataclass(frozen=True)
class Pruning:
    kept: tuple[str, ...]  # complete checkpoints, oldest first
    remove: tuple[str, ...]
    failed: tuple[str, ...] = ()  # could not be removed (e.g. owned by a container's user)

    @property
    def latest(self) -> str | None:
        return self.kept[-1] if self.kept else None


def select(entries: Iterable[Entry], keep: int) -> Pruning:
    """Which checkpoints stay (the newest ``keep`` complete ones) and which entries go."""
    listed = list(entries)
    complete = sorted(e.name for e in listed if e.kind == "dir" and e.complete and is_name(e.name))
    kept = complete[-keep:] if keep > 0 else []
    remove = sorted(e.name for e in listed if e.kind != "file" and e.name not in kept)
    return Pruning(tuple(kept), tuple(remove))


def _marked(parent: int, name: str) -> bool:
    try:
        fd = os.open(name, DIR, dir_fd=parent)  # a directory swapped for a link is refused
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.stat(MARKER, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
    finally:
        os.close(fd)


def scan(inside: Inside, rel: str) -> list[Entry]:
    """The entries at the top of ``rel`` (links are reported, never followed)."""
    out: list[Entry] = []
    with inside.dir(rel) as fd, os.scandir(fd) as entries:
        for entry in entries:
            kind: Kind
            if entry.is_symlink():
                kind = "link"
            elif entry.is_dir(follow_symlinks=False):
                kind = "dir"
            elif entry.is_file(follow_symlinks=False):
                kind = "file"
            else:
                kind = "other"
            out.append(Entry(entry.name, kind, kind == "dir" and _marked(fd, entry.name)))
    return out


def prune(inside: Inside, rel: str, keep: int) -> Pruning:
    """Leave only the newest ``keep`` complete checkpoints (and the workload's plain files)
    in ``rel``; what could not be removed is listed in ``failed`` (it is never offered)."""
    plan = select(scan(inside, rel), keep)
    failed = []
    for name in plan.remove:
        try:
            inside.remove(f"{rel}/{name}" if rel else name)
        except OSError:
            failed.append(name)
    return Pruning(plan.kept, plan.remove, tuple(failed))
