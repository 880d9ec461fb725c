"""Incremental, content-addressed snapshots of a directory (a volume, the server's home).

A snapshot is a manifest — every directory, file and link with its metadata and, for a file,
the list of its chunks — and the chunks themselves, kept once per store (``ChunkStore``)
whatever snapshot or volume they came from. Files are cut into content-defined chunks
(FastCDC, 256 KiB to 4 MiB, 1 MiB on average), so an insertion moves no boundary but its own.
A file whose size, mtime, ctime, inode and mode match the parent snapshot's entry is taken
from it without being read.

Nothing is followed: the tree is walked by descriptor with ``O_NOFOLLOW`` (a link is recorded
as a link, its target as text); devices, FIFOs and sockets are skipped and counted.

Consistency: a file is read between two ``fstat`` calls; if the file changed (size, mtime,
ctime), or was modified less than ``SETTLE`` before its read began (a write in the same clock
tick would not move the mtime), it is read again after a pause. A file that never holds still
within ``attempts`` reads is not torn into the snapshot: its entry from the parent is kept
(or it is left out) and it is named in ``Snapshot.unsettled``. Hooks make this unnecessary:
run ``sync`` or a database's checkpoint before the snapshot.

Restore writes into a new directory next to the target and renames it into place only when
every chunk was read back and matched its checksum; a damaged chunk fails the restore with
the name of its file and leaves the target as it was.
"""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastcdc import fastcdc

from dockyard.data.chunks import ChunkStore, decode, digest, encode, write_atomic
from dockyard.errors import ChunkDamaged, Conflict, NotFound
from dockyard.paths import DIR, FILE, Inside

MIN_CHUNK = 256 << 10
AVG_CHUNK = 1 << 20
MAX_CHUNK = 4 << 20
READ_BLOCK = 16 << 20
SMALL = 4 << 20
"""Files up to this size are read whole and stored while the walk goes on."""
MAX_INFLIGHT = 256
"""Chunks of small files queued for the pool at most (bounds the memory they hold)."""
HINT_TAIL = 64 << 20
"""Most bytes of a changed file cut at once along its previous chunks (see read_like)."""
SETTLE = 0.1
"""A file modified less than this many seconds before its read began is read again."""
ATTEMPTS = 5
WORKERS = 3
FORMAT = 1

Progress = Callable[[int], None]
"""Called with the number of bytes just processed (read or skipped)."""


@dataclass
class Entry:
    path: str
    type: str  # "d" directory, "f" file, "l" link
    mode: int
    mtime_ns: int
    size: int = 0
    ctime_ns: int = 0
    ino: int = 0
    chunks: list[str] = field(default_factory=list)
    target: str = ""  # a link's text
    lengths: list[int] = field(default_factory=list)  # of each chunk, for parallel restore
    uid: int = -1  # the owner (-1: unknown); restored when the restore runs as root
    gid: int = -1

    def same_file(self, st: os.stat_result) -> bool:
        return (
            self.type == "f"
            and self.size == st.st_size
            and self.mtime_ns == st.st_mtime_ns
            and self.ctime_ns == st.st_ctime_ns
            and self.ino == st.st_ino
            and self.mode == stat.S_IMODE(st.st_mode)
        )

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p": self.path, "t": self.type, "m": self.mode, "mt": self.mtime_ns}
        if self.uid >= 0:
            out |= {"u": self.uid, "g": self.gid}
        if self.type == "f":
            out |= {"s": self.size, "ct": self.ctime_ns, "i": self.ino}
            out |= {"c": self.chunks, "z": self.lengths}
        elif self.type == "l":
            out["l"] = self.target
        return out

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Entry:
        return cls(
            raw["p"],
            raw["t"],
            raw["m"],
            raw["mt"],
            raw.get("s", 0),
            raw.get("ct", 0),
            raw.get("i", 0),
            list(raw.get("c", [])),
            raw.get("l", ""),
            list(raw.get("z", [])),
            raw.get("u", -1),
            raw.get("g", -1),
        )


@dataclass
class Snapshot:
    """A snapshot's manifest: what it holds and how it was taken."""

    id: str
    key: str  # whose snapshot: "<project>/<volume>" or "_home"
    created: datetime
    entries: list[Entry]
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    files: int = 0
    size: int = 0  # bytes of its files
    new_bytes: int = 0  # chunk bytes this snapshot added to the store (after compression)
    read_bytes: int = 0  # file bytes read (the rest was recognised by metadata)
    skipped: int = 0  # devices, FIFOs, sockets
    unsettled: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "created": self.created.isoformat(),
            "parent": self.parent,
            "tags": self.tags,
            "files": self.files,
            "bytes": self.size,
            "newBytes": self.new_bytes,
            "readBytes": self.read_bytes,
            "skipped": self.skipped,
            "unsettled": self.unsettled,
            "seconds": round(self.seconds, 3),
        }

    def dump(self) -> bytes:
        body = self.summary() | {"format": FORMAT, "entries": [e.dump() for e in self.entries]}
        return orjson.dumps(body)

    @classmethod
    def load(cls, data: bytes) -> Snapshot:
        raw = orjson.loads(data)
        return cls(
            raw["id"],
            raw["key"],
            datetime.fromisoformat(raw["created"]),
            [Entry.load(e) for e in raw["entries"]],
            raw.get("parent"),
            list(raw.get("tags", [])),
            raw.get("files", 0),
            raw.get("bytes", 0),
            raw.get("newBytes", 0),
            raw.get("readBytes", 0),
            raw.get("skipped", 0),
            list(raw.get("unsettled", [])),
            raw.get("seconds", 0.0),
        )

    def chunk_names(self) -> set[str]:
        return {c for e in self.entries for c in e.chunks}


def volume_key(project: str, name: str) -> str:
    """A volume's key in the store and in backups."""
    return f"{project}/{name}"


def dataset_key(project: str, name: str) -> str:
    """A dataset's versions' key (a volume name never starts with a dot)."""
    return f"{project}/.datasets/{name}"


def new_id(at: datetime) -> str:
    """``YYYYMMDD-HHMMSS-uuuuuu`` (the microseconds in hex): ids sort as they were taken."""
    return f"{at:%Y%m%d-%H%M%S}-{at.microsecond:06x}"


class SnapshotStore:
    """Chunks and manifests under one root; writers take the store's lock one at a time."""

    def __init__(self, root: Path, lock_timeout: float = 600.0) -> None:
        self.root = root
        self.chunks = ChunkStore(root)
        self.manifests = root / "snapshots"
        self.lock_timeout = lock_timeout
        self._summaries: dict[tuple[str, str], dict[str, Any]] = {}

    # manifests --------------------------------------------------------------------------
    def _manifest_path(self, key: str, snapshot_id: str) -> Path:
        return self.manifests.joinpath(*key.split("/"), snapshot_id)

    def ids(self, key: str) -> list[str]:
        """Snapshot ids of ``key``, oldest first."""
        folder = self.manifests.joinpath(*key.split("/"))
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))

    def keys(self) -> list[str]:
        if not self.manifests.is_dir():
            return []
        found = {
            p.parent.relative_to(self.manifests).as_posix()
            for p in self.manifests.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
        return sorted(found)

    def read_manifest(self, key: str, snapshot_id: str) -> bytes:
        try:
            stored = self._manifest_path(key, snapshot_id).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"snapshot '{snapshot_id}' of {key} not found",
                hint=f"list them with: dockyard volumes snapshots {key.rpartition('/')[2]}",
            ) from None
        name, _, body = stored.partition(b"\n")
        return decode(name.decode(), body, f"the manifest of snapshot {snapshot_id}")

    def load(self, key: str, snapshot_id: str) -> Snapshot:
        return Snapshot.load(self.read_manifest(key, snapshot_id))

    def summary(self, key: str, snapshot_id: str) -> dict[str, Any]:
        """A snapshot's summary (no entries); manifests never change, so each is read once
        per process for it (listing and the retention ask often)."""
        cached = self._summaries.get((key, snapshot_id))
        if cached is None:
            cached = self._summaries[(key, snapshot_id)] = self.load(key, snapshot_id).summary()
        return cached

    def latest(self, key: str) -> Snapshot | None:
        ids = self.ids(key)
        return self.load(key, ids[-1]) if ids else None

    def write_manifest(self, snap: Snapshot) -> None:
        data = snap.dump()
        stored = digest(data).encode() + b"\n" + encode(data)
        write_atomic(self._manifest_path(snap.key, snap.id), stored)

    def stored_manifest(self, key: str, snapshot_id: str) -> bytes:
        """The manifest file as stored (checked on read by ``read_manifest``)."""
        return self._manifest_path(key, snapshot_id).read_bytes()

    def put_manifest(self, key: str, snapshot_id: str, stored: bytes) -> None:
        name, _, body = stored.partition(b"\n")
        decode(name.decode(), body, f"the manifest of snapshot {snapshot_id}")
        write_atomic(self._manifest_path(key, snapshot_id), stored)

    # the lock ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "lock"
        deadline = time.monotonic() + self.lock_timeout
        with open(path, "a+") as fh:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise Conflict(
                            f"the snapshot store {self.root} is busy",
                            hint="another snapshot, restore or prune runs; try again later",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # snapshot ----------------------------------------------------------------------------
    def snapshot(
        self,
        source: Path,
        key: str,
        *,
        tags: list[str] | None = None,
        progress: Progress | None = None,
        attempts: int = ATTEMPTS,
        only: frozenset[str] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> Snapshot:
        """Take a snapshot of ``source`` (a directory the server owns; what is inside it may
        be a workload's) under ``key``, incremental on the latest one of that key;
        ``only``: the top-level names to include (all when unset)."""
        with self.locked():
            started = time.perf_counter()
            parent = self.latest(key)
            before = {e.path: e for e in parent.entries} if parent else {}
            created = now()
            snap = Snapshot(new_id(created), key, created, [], parent.id if parent else None)
            snap.tags = list(tags or [])
            with ThreadPoolExecutor(WORKERS) as pool:
                walker = _Walker(self.chunks, pool, before, snap, progress, attempts, only)
                with Inside(source).dir() as fd:
                    st = os.fstat(fd)
                    root = Entry("", "d", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
                    root.uid, root.gid = st.st_uid, st.st_gid
                    snap.entries.append(root)
                    walker.walk(fd, "")
                walker.resolve()
            snap.files = sum(1 for e in snap.entries if e.type == "f")
            snap.size = sum(e.size for e in snap.entries if e.type == "f")
            snap.seconds = time.perf_counter() - started
            self.write_manifest(snap)
            return snap

    # restore -----------------------------------------------------------------------------
    def restore(
        self,
        key: str,
        snapshot_id: str,
        target: Path,
        *,
        in_place: bool = False,
        progress: Progress | None = None,
    ) -> Snapshot:
        """Write the snapshot to ``target`` (a new directory, or with ``in_place`` the one
        to replace), every chunk checked; on any error ``target`` is left as it was."""
        snap = self.load(key, snapshot_id)
        if target.exists() and not in_place and (not target.is_dir() or any(target.iterdir())):
            raise Conflict(
                f"{target} exists and is not empty",
                hint="restore to a new volume with --to NEW, or in place when unused",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.restoring-{secrets.token_hex(4)}"
        try:
            _restore_into(self.chunks, snap, staging, progress)
            if target.exists():
                old = target.parent / f".{target.name}.replaced-{secrets.token_hex(4)}"
                os.rename(target, old)
                os.rename(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return snap

    # forget and prune --------------------------------------------------------------------
    def forget(self, key: str, snapshot_ids: list[str]) -> None:
        with self.locked():
            for sid in snapshot_ids:
                with contextlib.suppress(FileNotFoundError):
                    self._manifest_path(key, sid).unlink()

    def prune(self) -> tuple[int, int]:
        """Remove chunks no manifest refers to: (chunks removed, bytes freed)."""
        with self.locked():
            used: set[str] = set()
            for key in self.keys():
                for sid in self.ids(key):
                    used |= self.load(key, sid).chunk_names()
            removed = freed = 0
            for name in list(self.chunks.names()):
                if name not in used:
                    freed += self.chunks.remove(name)
                    removed += 1
            return removed, freed


class _Walker:
    def __init__(
        self,
        chunks: ChunkStore,
        pool: ThreadPoolExecutor,
        before: dict[str, Entry],
        snap: Snapshot,
        progress: Progress | None,
        attempts: int,
        only: frozenset[str] | None = None,
    ) -> None:
        self.only = only
        self.buffers: list[bytearray] | None = None
        self.pending: list[tuple[Entry, list[Future[tuple[str, int]]]]] = []
        self.inflight: collections.deque[Future[tuple[str, int]]] = collections.deque()
        self.chunks = chunks
        self.pool = pool
        self.before = before
        self.snap = snap
        self.progress = progress
        self.attempts = attempts

    def walk(self, fd: int, at: str) -> None:
        for entry in sorted(os.scandir(fd), key=lambda e: e.name):
            if not at and self.only is not None and entry.name not in self.only:
                continue
            rel = f"{at}/{entry.name}" if at else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since it was listed
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                with contextlib.suppress(FileNotFoundError):
                    target = os.readlink(entry.name, dir_fd=fd)
                    link = Entry(rel, "l", mode, st.st_mtime_ns, target=target)
                    link.uid, link.gid = st.st_uid, st.st_gid
                    self.snap.entries.append(link)
            elif stat.S_ISDIR(st.st_mode):
                try:
                    child = os.open(entry.name, DIR, dir_fd=fd)
                except OSError:
                    continue  # replaced by a link or removed since it was listed
                try:
                    folder = Entry(rel, "d", mode, st.st_mtime_ns, uid=st.st_uid, gid=st.st_gid)
                    self.snap.entries.append(folder)
                    self.walk(child, rel)
                finally:
                    os.close(child)
            elif stat.S_ISREG(st.st_mode):
                self.file(fd, entry.name, rel, st)
            else:
                self.snap.skipped += 1

    def file(self, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        old = self.before.get(rel)
        if old is not None and old.same_file(st) and all(map(self.chunks.has, old.chunks)):
            self.snap.entries.append(old)
            if self.progress:
                self.progress(st.st_size)
            return
        try:
            fd = os.open(name, FILE, dir_fd=dfd)
        except OSError:
            return  # replaced by a link, a FIFO or removed since it was listed
        try:
            os.set_blocking(fd, True)
            for attempt in range(self.attempts):
                begun = time.time_ns()
                first = os.fstat(fd)
                if not stat.S_ISREG(first.st_mode):
                    return
                os.lseek(fd, 0, os.SEEK_SET)
                hinted = self.read_like(fd, old, first.st_size) if old is not None else None
                names: list[str] = []
                futures: list[Future[tuple[str, int]]] = []
                added = 0
                if hinted is not None:
                    names, lengths, added = hinted
                elif first.st_size <= SMALL:
                    futures, lengths = self.read_small(fd)
                else:
                    futures, lengths = self.read(fd)
                size = sum(lengths)
                last = os.fstat(fd)
                settled = (
                    (first.st_size, first.st_mtime_ns, first.st_ctime_ns)
                    == (last.st_size, last.st_mtime_ns, last.st_ctime_ns)
                    and size == last.st_size
                    and last.st_mtime_ns < begun - int(SETTLE * 1e9)
                )
                self.snap.read_bytes += size
                self.snap.new_bytes += added
                if settled:
                    entry = Entry(
                        rel,
                        "f",
                        stat.S_IMODE(last.st_mode),
                        last.st_mtime_ns,
                        size,
                        last.st_ctime_ns,
                        last.st_ino,
                        names,
                        lengths=lengths,
                        uid=last.st_uid,
                        gid=last.st_gid,
                    )
                    self.snap.entries.append(entry)
                    if futures:
                        self.pending.append((entry, futures))
                    if self.progress:
                        self.progress(size)
                    return
                if attempt + 1 < self.attempts:
                    time.sleep(SETTLE * (attempt + 1))
            self.snap.unsettled.append(rel)
            if old is not None and old.type == "f":
                self.snap.entries.append(old)
        finally:
            os.close(fd)

    def read_like(self, fd: int, old: Entry, size: int) -> tuple[list[str], list[int], int] | None:
        """Chunk a changed file along its previous chunks: each old chunk's range is read
        and hashed in the pool; a range that still matches is that chunk again (no cutting),
        the ranges that do not are cut anew. An edit in place costs one hash pass, not a
        cut of the whole file. None: no hints (or a file that grew by more than HINT_TAIL)."""
        if old.type != "f" or not old.lengths or len(old.lengths) != len(old.chunks):
            return None
        spans, offset = [], 0
        for name, length in zip(old.chunks, old.lengths, strict=True):
            if offset + length > size:
                break
            spans.append((offset, length, name))
            offset += length
        if size - offset > HINT_TAIL:
            return None

        def check(span: tuple[int, int, str]) -> bytes | None:
            at, length, expected = span
            data = os.pread(fd, length, at)
            return None if len(data) == length and digest(data) == expected else data

        names: list[str] = []
        lengths: list[int] = []
        added = 0
        run = bytearray()  # bytes that no old chunk matches, waiting to be cut

        def flush() -> None:
            nonlocal added
            if run:
                for cut in fastcdc(run, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK, False, None):
                    name, new = self.chunks.put(
                        memoryview(run)[cut.offset : cut.offset + cut.length]
                    )
                    names.append(name)
                    lengths.append(cut.length)
                    added += new
                run.clear()

        for (_at, length, name), data in zip(spans, self.pool.map(check, spans), strict=True):
            if data is None:
                flush()
                names.append(name)
                lengths.append(length)
            else:
                run += data
                if len(run) >= HINT_TAIL:
                    flush()
        while block := os.pread(fd, READ_BLOCK, offset):  # what the file gained
            run += block
            offset += len(block)
        flush()
        return names, lengths, added

    def read(self, fd: int) -> tuple[list[Future[tuple[str, int]]], list[int]]:
        """Chunk the file behind ``fd`` as a stream: (the pool's futures of its chunks, their
        lengths).

        Two buffers take turns: while the pool hashes (and stores) the chunks of one block,
        straight out of its buffer, the next block is read into the other and cut. A block's
        tail after its last cut is carried to the front of the next block (a cut there may
        only be the end of the data read so far).
        """
        futures: list[Future[tuple[str, int]]] = []
        lengths: list[int] = []
        if self.buffers is None:  # once per snapshot: every file's read finishes with them
            self.buffers = [bytearray(READ_BLOCK + MAX_CHUNK) for _ in range(2)]
        buffers = self.buffers
        using: list[list[Future[tuple[str, int]]]] = [[], []]
        carry = b""
        turn = 0
        while True:
            for fut in using[turn]:
                fut.result()  # the pool is done with this buffer
            using[turn] = []
            buf = memoryview(buffers[turn])
            buf[: len(carry)] = carry
            filled = len(carry)
            while filled < len(carry) + READ_BLOCK:
                got = os.readv(fd, [buf[filled : len(carry) + READ_BLOCK]])
                if not got:
                    break
                filled += got
            end = filled < len(carry) + READ_BLOCK
            data = buf[:filled]
            if not filled:
                break
            cuts = list(fastcdc(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK, False, None))
            carry = b""
            if not end and len(cuts) > 1:
                last = cuts.pop()  # may be cut short by the block's end: chunk it again
                carry = bytes(data[last.offset :])
            elif not end:  # no cut yet (cannot happen with MAX_CHUNK < READ_BLOCK)
                carry = bytes(data)
                continue
            for cut in cuts:
                lengths.append(cut.length)
                piece = data[cut.offset : cut.offset + cut.length]
                fut = self.pool.submit(self.chunks.put, piece)
                futures.append(fut)
                using[turn].append(fut)
            if end:
                break
            turn = 1 - turn
        for fut in futures:
            fut.result()  # the buffers are shared by every file of the snapshot
        return futures, lengths

    def read_small(self, fd: int) -> tuple[list[Future[tuple[str, int]]], list[int]]:
        """A file of at most SMALL bytes, read whole; its chunks are hashed and stored by the
        pool while the walk goes on (``resolve`` collects them)."""
        data = b""
        while block := os.read(fd, SMALL + 1 - len(data)):
            data += block
            if len(data) > SMALL:  # it grew since its stat: read it as a stream
                os.lseek(fd, 0, os.SEEK_SET)
                return self.read(fd)
        futures = []
        lengths = []
        for cut in fastcdc(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK, False, None) if data else []:
            lengths.append(cut.length)
            futures.append(
                self.pool.submit(self.chunks.put, data[cut.offset : cut.offset + cut.length])
            )
        while len(self.inflight) > MAX_INFLIGHT:
            self.inflight.popleft().result()
        self.inflight.extend(futures)
        return futures, lengths

    def resolve(self) -> None:
        """Fill in the chunk names of the files whose chunks the pool was still storing."""
        for entry, futures in self.pending:
            for fut in futures:
                name, new = fut.result()
                entry.chunks.append(name)
                self.snap.new_bytes += new
        self.pending.clear()


def _restore_into(
    chunks: ChunkStore, snap: Snapshot, staging: Path, progress: Progress | None
) -> None:
    """Directories first, then every chunk written at its offset by a pool of threads (each
    read back, decompressed and checked), then links, modes and times."""
    staging.mkdir(mode=0o700)
    where = Inside(staging)
    dirs = [e for e in snap.entries if e.type == "d"]
    for entry in dirs:
        if entry.path:
            where.mkdirs(entry.path)
    files = [e for e in snap.entries if e.type == "f"]
    create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

    def opened(entry: Entry, flags: int) -> int:
        parent, _, name = entry.path.rpartition("/")
        with where.dir(parent) as dfd:
            return os.open(name, flags, 0o600, dir_fd=dfd)

    owners = os.geteuid() == 0  # only root can give files to others

    def finish(fd: int, entry: Entry) -> None:
        if owners and entry.uid >= 0:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def small(entry: Entry) -> None:
        fd = opened(entry, create)
        try:
            for chunk in entry.chunks:
                data = chunks.get(chunk, f"file '{entry.path}' of snapshot {snap.id}")
                os.write(fd, data)
                if progress:
                    progress(len(data))
            finish(fd, entry)
        finally:
            os.close(fd)

    def piece(entry: Entry, chunk: str, offset: int) -> None:
        data = chunks.get(chunk, f"file '{entry.path}' of snapshot {snap.id}")
        fd = opened(entry, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        if progress:
            progress(len(data))

    large = [e for e in files if len(e.chunks) > 1 and len(e.lengths) == len(e.chunks)]
    for entry in large:
        fd = opened(entry, create)
        try:
            os.ftruncate(fd, entry.size)
        finally:
            os.close(fd)
    with ThreadPoolExecutor(WORKERS) as pool:
        chunked = {id(e) for e in large}
        futures = [pool.submit(small, e) for e in files if id(e) not in chunked]
        for entry in large:
            offset = 0
            for chunk, length in zip(entry.chunks, entry.lengths, strict=True):
                futures.append(pool.submit(piece, entry, chunk, offset))
                offset += length
        for fut in futures:
            fut.result()
    for entry in large:
        fd = opened(entry, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            finish(fd, entry)
        finally:
            os.close(fd)
    for entry in snap.entries:
        if entry.type == "l":
            parent, _, name = entry.path.rpartition("/")
            with where.dir(parent) as dfd:
                os.symlink(entry.target, name, dir_fd=dfd)
                if owners and entry.uid >= 0:
                    os.chown(name, entry.uid, entry.gid, dir_fd=dfd, follow_symlinks=False)
    for entry in reversed(dirs):
        with where.dir(entry.path) as dfd:
            if owners and entry.uid >= 0:
                os.fchown(dfd, entry.uid, entry.gid)
            os.chmod(dfd, entry.mode)
            os.utime(dfd, ns=(entry.mtime_ns, entry.mtime_ns))


def verify(store: SnapshotStore, key: str, snapshot_id: str) -> list[str]:
    """Read every chunk of a snapshot back: the problems found (empty when all is well)."""
    snap = store.load(key, snapshot_id)
    problems = []
    for entry in snap.entries:
        for chunk in entry.chunks:
            try:
                store.chunks.get(chunk, f"file '{entry.path}'")
            except ChunkDamaged as exc:
                problems.append(exc.message)
                break
    return problems
