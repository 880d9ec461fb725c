"""Checkpoints that resume: the protocol, and a small helper for workloads that follow it.

A job with ``checkpoint: {volume: …}`` finds ``$DOCKYARD_CHECKPOINT_DIR`` kept across its
attempts. A checkpoint is a directory ``$DOCKYARD_CHECKPOINT_DIR/<name>/`` (a name such as
``epoch-0007``: names sort as strings, so pad the numbers) and it is *complete* when the
regular file ``<name>/.complete`` exists, written last — after the checkpoint's files were
written and fsynced, through a temporary file and ``os.replace``. Before each attempt Dockyard
removes what is not a complete checkpoint, keeps the newest ``keep`` complete ones and names
the newest in ``$DOCKYARD_CHECKPOINT_LATEST`` (unset when there is none).

Any script can follow the protocol without importing Dockyard (examples/digits/code/train.py
does it in a few lines). This module is the same in code, for workloads that have Dockyard
installed; it uses the standard library only, so it may also be copied::

    from dockyard import checkpoints

    start = 0
    if (last := checkpoints.latest(ckpt_dir)) is not None:
        state = load(last)                       # the workload's own format
        start = state["epoch"] + 1
    for epoch in range(start, epochs):
        train_one_epoch()
        with checkpoints.save(ckpt_dir, f"epoch-{epoch:04d}") as tmp:
            dump(state, tmp / "state.bin")       # fsynced and renamed into place on exit
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

MARKER = ".complete"
"""The file that makes a checkpoint directory complete (written last)."""
DIR_ENV = "DOCKYARD_CHECKPOINT_DIR"
LATEST_ENV = "DOCKYARD_CHECKPOINT_LATEST"
EVERY_ENV = "DOCKYARD_CHECKPOINT_EVERY"
KEEP_ENV = "DOCKYARD_CHECKPOINT_KEEP"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", re.ASCII)
"""What a checkpoint may be called: a letter or digit, then letters, digits, ``.``, ``_``,
``-`` (at most 255); hidden names (``.tmp-…``) are never checkpoints."""


def is_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint directory (not a link) holding its marker file."""
    path = Path(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        return stat.S_ISREG(os.lstat(path / MARKER).st_mode)
    except OSError:
        return False


def completed(directory: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoints in ``directory``, oldest (lowest name) first."""
    directory = Path(directory)
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [directory / n for n in sorted(names) if is_name(n) and is_complete(directory / n)]


def latest(directory: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint in ``directory``; a half-written one is never returned."""
    done = completed(directory)
    return done[-1] if done else None


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for here, dirs, files in os.walk(root):
        for name in files:
            if not os.path.islink(os.path.join(here, name)):
                _fsync(Path(here, name))
        _fsync(Path(here), os.O_RDONLY | os.O_DIRECTORY)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(here, d))]


def mark_complete(path: str | os.PathLike[str]) -> None:
    """Make the checkpoint directory ``path`` complete: fsync its files, then write the marker
    through a temporary file and ``os.replace`` (for workloads that write in place)."""
    path = Path(path)
    _fsync_tree(path)
    tmp = path / f".{MARKER}.{secrets.token_hex(4)}"
    with open(tmp, "wb") as fh:
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / MARKER)
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


@contextlib.contextmanager
def save(directory: str | os.PathLike[str], name: str, keep: int | None = None) -> Iterator[Path]:
    """A temporary directory to write the checkpoint ``name`` into; when the block ends, its
    files are fsynced, the marker is written and it is renamed to ``directory/name`` in one
    step. If the block raises, nothing is left behind. With ``keep``, only the newest
    ``keep`` complete checkpoints remain afterwards."""
    if not is_name(name):
        raise ValueError(f"{name!r} is not a checkpoint name ({NAME.pattern})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        mark_complete(tmp)
        final = directory / name
        aside = directory / f".old-{name}-{secrets.token_hex(4)}"
        replaced = os.path.lexists(final)
        if replaced:  # a checkpoint of the same name: moved aside, then removed
            os.replace(final, aside)
        os.replace(tmp, final)
        _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)
        if replaced:
            _remove(aside)
    except BaseException:
        _remove(tmp)
        raise
    if keep is not None:
        for old in completed(directory)[: -max(keep, 1)]:
            _remove(old)


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
