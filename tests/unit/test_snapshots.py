"""The snapshot engine on real files: incremental, deduplicated, verified, never following a
workload's links, and never torn by a writer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.data import chunks as chunk_format
from dockyard.data.snapshots import MIN_CHUNK, SnapshotStore, verify
from dockyard.errors import ChunkDamaged, Conflict


def _tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """path → (kind, mode, content or link text), links not followed."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("l", 0, os.readlink(path))
            elif path.is_dir():
                out[rel] = ("d", st.st_mode & 0o7777, b"")
            else:
                out[rel] = ("f", st.st_mode & 0o7777, path.read_bytes())
    return out


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "vol"
    (root / "models" / "empty").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (root / "models" / "a.txt").write_text("alpha\n")
    (root / "models" / "empty.txt").write_bytes(b"")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o750)
    os.symlink("models/a.txt", root / "latest")
    return root


def test_snapshot_and_restore_give_back_the_same_tree(tmp_path: Path, volume: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(volume, "p/v")
    assert snap.files == 4 and snap.size == 5 * 1024 * 1024 + 6 + 10
    store.restore("p/v", snap.id, tmp_path / "out")
    assert _tree(tmp_path / "out") == _tree(volume)
    big = (tmp_path / "out" / "big.bin").stat()
    assert big.st_mtime_ns == (volume / "big.bin").stat().st_mtime_ns
    assert verify(store, "p/v", snap.id) == []


def test_unchanged_files_are_not_read_again(tmp_path: Path, volume: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    first = store.snapshot(volume, "p/v")
    (volume / "models" / "a.txt").write_text("beta\n")
    time.sleep(0.15)
    second = store.snapshot(volume, "p/v")
    assert second.parent == first.id
    assert second.read_bytes == 5  # only the changed file was read
    assert second.new_bytes > 0 and second.new_bytes < 100
    store.restore("p/v", second.id, tmp_path / "out")
    assert (tmp_path / "out" / "models" / "a.txt").read_text() == "beta\n"


def test_chunks_are_shared_across_volumes_and_survive_an_insertion(
    tmp_path: Path, volume: Path
) -> None:
    store = SnapshotStore(tmp_path / "store")
    store.snapshot(volume, "p/v")
    stored = store.chunks.stored_bytes()
    copy = tmp_path / "copy"
    copy.mkdir()
    data = (volume / "big.bin").read_bytes()
    (copy / "shifted.bin").write_bytes(b"inserted at the front" + data)  # content-defined cuts
    time.sleep(0.15)
    other = store.snapshot(copy, "p/other")
    assert other.new_bytes < len(data) / 2  # the boundaries after the first cut line up again
    assert store.chunks.stored_bytes() < stored + len(data) / 2


def test_a_damaged_chunk_fails_the_restore_naming_the_file(tmp_path: Path, volume: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(volume, "p/v")
    entry = next(e for e in snap.entries if e.path == "models/a.txt")
    path = store.chunks.path(entry.chunks[0])
    stored = bytearray(path.read_bytes())
    stored[-1] ^= 0x01  # one bit
    path.write_bytes(bytes(stored))
    target = tmp_path / "out"
    with pytest.raises(ChunkDamaged, match=r"models/a\.txt"):
        store.restore("p/v", snap.id, target)
    assert not target.exists()  # nothing half-restored is left
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert any("models/a.txt" in p for p in verify(store, "p/v", snap.id))


def test_a_missing_chunk_fails_and_an_in_place_restore_leaves_the_volume(
    tmp_path: Path, volume: Path
) -> None:
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(volume, "p/v")
    entry = next(e for e in snap.entries if e.path == "big.bin")
    store.chunks.path(entry.chunks[-1]).unlink()
    before = _tree(volume)
    with pytest.raises(ChunkDamaged, match=r"big\.bin.*missing"):
        store.restore("p/v", snap.id, volume, in_place=True)
    assert _tree(volume) == before


def test_restore_refuses_a_target_that_holds_files(tmp_path: Path, volume: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(volume, "p/v")
    with pytest.raises(Conflict, match="not empty"):
        store.restore("p/v", snap.id, volume)


def test_links_are_recorded_never_followed(tmp_path: Path, volume: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("TOP-SECRET-VALUE")
    os.symlink(outside, volume / "escape")
    os.symlink(outside / "secret", volume / "models" / "file-link")
    os.mkfifo(volume / "pipe")  # a reader of a FIFO would hang: skipped
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(volume, "p/v")
    assert snap.skipped == 1
    kinds = {e.path: e.type for e in snap.entries}
    assert kinds["escape"] == "l" and kinds["models/file-link"] == "l"
    assert not any(e.path.startswith("escape/") for e in snap.entries)
    for name in store.chunks.names():
        assert b"TOP-SECRET-VALUE" not in store.chunks.get(name)
    store.restore("p/v", snap.id, tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "escape") == str(outside)


WRITER = """
import os, sys, time
path, stop = sys.argv[1], time.monotonic() + float(sys.argv[2])
n = 0
with open(path, "r+b") as fh:
    while time.monotonic() < stop:
        n = (n + 1) % 256
        fh.seek(0)
        for _ in range(16):  # 16 writes of 64 KiB: a reader in between sees a torn file
            fh.write(bytes([n]) * 65536)
        fh.flush()
"""


def test_a_file_written_during_the_snapshot_is_never_torn(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    busy = root / "busy.bin"
    busy.write_bytes(b"\x00" * (16 * 65536))
    (root / "quiet.txt").write_text("still")
    time.sleep(0.15)
    store = SnapshotStore(tmp_path / "store")
    first = store.snapshot(root, "p/v")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(busy), "30"])
    try:
        deadline = time.monotonic() + 20
        while busy.read_bytes()[:1] == b"\x00" and time.monotonic() < deadline:
            time.sleep(0.01)  # until the writer is at work
        snaps = [store.snapshot(root, "p/v", attempts=3) for _ in range(3)]
    finally:
        writer.kill()
        writer.wait(10)
    for snap in snaps:
        store.restore("p/v", snap.id, tmp_path / snap.id)
        data = (tmp_path / snap.id / "busy.bin").read_bytes()
        assert len(set(data)) == 1, f"torn: {sorted(set(data))[:5]}"  # one version whole
        assert snap.unsettled == ["busy.bin"]  # named, and the parent's version kept
        assert (tmp_path / snap.id / "quiet.txt").read_text() == "still"
    # once the writer stopped, the file is taken as it is
    time.sleep(0.15)
    settled = store.snapshot(root, "p/v")
    assert settled.unsettled == [] and first.unsettled == []
    store.restore("p/v", settled.id, tmp_path / "settled")
    assert (tmp_path / "settled" / "busy.bin").read_bytes() == busy.read_bytes()


def test_forget_and_prune_free_what_no_snapshot_needs(tmp_path: Path, volume: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    first = store.snapshot(volume, "p/v")
    (volume / "big.bin").write_bytes(os.urandom(2 * MIN_CHUNK))
    time.sleep(0.15)
    second = store.snapshot(volume, "p/v")
    before = store.chunks.stored_bytes()
    store.forget("p/v", [first.id])
    removed, freed = store.prune()
    assert removed >= 1 and freed > 4 * 1024 * 1024
    assert store.chunks.stored_bytes() == before - freed
    assert store.ids("p/v") == [second.id]
    store.restore("p/v", second.id, tmp_path / "out")  # still whole
    assert _tree(tmp_path / "out") == _tree(volume)


def test_chunk_format_keeps_incompressible_data_raw() -> None:
    random = os.urandom(100_000)
    assert chunk_format.encode(random)[:1] == chunk_format.RAW
    text = b"abc" * 100_000
    stored = chunk_format.encode(text)
    assert stored[:1] == chunk_format.ZSTD and len(stored) < 1000
    assert chunk_format.decode(chunk_format.digest(text), stored) == text
    with pytest.raises(ChunkDamaged, match="unknown header"):
        chunk_format.decode(chunk_format.digest(text), b"\x07" + stored[1:])


def test_a_changed_file_is_cut_along_its_previous_chunks(tmp_path: Path, volume: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    store.snapshot(volume, "p/v")
    big = volume / "big.bin"
    with open(big, "r+b") as fh:  # an edit in place: one region
        fh.seek(2 * 1024 * 1024)
        fh.write(b"\xff" * 4096)
    time.sleep(0.15)
    edited = store.snapshot(volume, "p/v")
    assert edited.new_bytes < 1.5 * 4 * 1024 * 1024  # the chunks around the edit, no more
    store.restore("p/v", edited.id, tmp_path / "edited")
    assert (tmp_path / "edited" / "big.bin").read_bytes() == big.read_bytes()
    big.write_bytes(b"shifted" + big.read_bytes() + b"and grown")  # nothing lines up
    time.sleep(0.15)
    shifted = store.snapshot(volume, "p/v")
    store.restore("p/v", shifted.id, tmp_path / "shifted")
    assert (tmp_path / "shifted" / "big.bin").read_bytes() == big.read_bytes()


def test_owners_come_back_when_the_restore_runs_as_root(tmp_path: Path, volume: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root gives files to other users")
    os.chown(volume / "models" / "a.txt", 1000, 1000)  # written by a container's user
    os.chown(volume / "models", 1000, 1000)
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(volume, "p/v")
    store.restore("p/v", snap.id, tmp_path / "out")
    st = (tmp_path / "out" / "models" / "a.txt").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert (tmp_path / "out" / "models").stat().st_uid == 1000
    assert (tmp_path / "out" / "big.bin").stat().st_uid == 0


def test_ids_sort_as_the_snapshots_were_taken() -> None:
    from datetime import UTC, datetime

    from dockyard.data.snapshots import new_id
    from dockyard.spec.volumes import SNAPSHOT_ID_RE

    times = [datetime(2026, 12, 1, 16, 0, 0, us, tzinfo=UTC) for us in (999_999, 5, 70_000)]
    ids = [new_id(t) for t in times]
    assert sorted(ids) == [ids[1], ids[2], ids[0]]
    assert all(SNAPSHOT_ID_RE.match(i) for i in ids)
