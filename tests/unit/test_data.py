"""Files, the artifact store, code snapshots and dataset commits, on a temporary directory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.archives import safe_extract
from dockyard.data import datasets
from dockyard.data.artifacts import ArtifactStore
from dockyard.data.code import CODE_PREFIX, CodeStore, pack
from dockyard.data.files import (
    manifest_digest,
    sha256_file,
    walk_files,
)
from dockyard.errors import ChecksumMismatch, DockyardError, InvalidRequest, InvalidSpec, NotFound
from dockyard.paths import Inside, write_private


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def corrupt(path: Path, data: bytes = b"tampered") -> None:
    """Blobs are stored read-only: make one writable and change it."""
    path.chmod(0o644)
    path.write_bytes(data)


TREE = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)), "sub/deeper/c.csv": b"1,2\n3,4\n"}


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree", TREE)


def noop(done: int, total: int | None) -> None:
    pass


# -- files ----------------------------------------------------------------------------------
def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert sha256_file(path) == hashlib.sha256(b"hello").hexdigest()


def test_write_private_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "f.json"
    write_private(path, b"one")
    write_private(path, b"two")
    assert path.read_bytes() == b"two" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


def test_walk_files_skips_ignored(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path / "t",
        {
            "b.py": b"",
            "a/z.py": b"",
            "a/__pycache__/z.cpython-311.pyc": b"",
            ".git/HEAD": b"",
            ".DS_Store": b"",
            "c/.venv/bin/python": b"",
        },
    )
    found = [p.relative_to(root).as_posix() for p in walk_files(root)]
    assert sorted(found) == ["a/z.py", "b.py"]
    assert Inside(root).usage() == (6, 0)  # a volume's usage counts every file


def manifest(path: Path) -> dict[str, dict[str, Any]]:
    return datasets.manifest(Inside(path.parent), path.name)


def test_manifest(tree: Path) -> None:
    files = manifest(tree)
    assert sorted(files) == sorted(TREE)
    for rel, data in TREE.items():
        assert files[rel]["sha256"] == hashlib.sha256(data).hexdigest()
        assert files[rel]["size"] == len(data)


def test_manifest_digest_is_stable(tmp_path: Path, tree: Path) -> None:
    digest = manifest_digest(manifest(tree))
    assert len(digest) == 64
    assert manifest_digest(manifest(tree)) == digest
    os.utime(tree / "a.txt", ns=(1, 1))  # times do not matter, only content
    assert manifest_digest(manifest(tree)) == digest
    copy = make_tree(tmp_path / "copy", dict(reversed(TREE.items())))
    assert manifest_digest(manifest(copy)) == digest


@pytest.mark.parametrize(
    "change",
    [
        {"a.txt": b"alpha!\n"},  # content
        {"new.txt": b""},  # an added file
        {"sub/B.bin": bytes(range(256)), "sub/b.bin": None},  # a rename
    ],
    ids=["content", "added", "renamed"],
)
def test_manifest_digest_is_content_sensitive(
    tmp_path: Path, change: dict[str, bytes | None]
) -> None:
    before = manifest_digest(manifest(make_tree(tmp_path / "a", TREE)))
    files = {**TREE, **change}
    after_tree = make_tree(tmp_path / "b", {k: v for k, v in files.items() if v is not None})
    assert manifest_digest(manifest(after_tree)) != before


# -- artifact store -------------------------------------------------------------------------
def test_put_stream_and_put_bytes_agree(store: ArtifactStore, tree: Path) -> None:
    data = TREE["sub/b.bin"]
    with open(tree / "sub" / "b.bin", "rb") as fh:
        by_file, size = store.put_stream(fh)
    assert size == len(data)
    by_bytes = store.put_bytes(data)
    assert by_file == by_bytes == hashlib.sha256(data).hexdigest()
    assert store.has(by_file)
    assert store.path(by_file).read_bytes() == data
    assert store.put_bytes(data) == by_file
    assert store.put_bytes(b"other") != by_file


def test_blobs_are_read_only_and_temp_files_are_cleaned(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"x")
    mode = stat.S_IMODE(store.path(digest).stat().st_mode)
    assert mode & 0o222 == 0
    assert list((store.root / "tmp").iterdir()) == []


def test_verified(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"payload")
    assert store.verified(digest).read_bytes() == b"payload"


def test_verified_detects_corruption(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"payload")
    corrupt(store.path(digest))
    with pytest.raises(ChecksumMismatch) as info:
        store.verified(digest)
    assert digest in info.value.message
    assert hashlib.sha256(b"tampered").hexdigest() in info.value.message


def test_verified_missing(store: ArtifactStore) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.has(digest)
    with pytest.raises(NotFound, match=digest):
        store.verified(digest)


def put_tree(store: ArtifactStore, tree: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in walk_files(tree):
        with open(path, "rb") as fh:
            digest, size = store.put_stream(fh)
        files[path.relative_to(tree).as_posix()] = {"sha256": digest, "size": size}
    return files


def test_put_tree_and_materialize(store: ArtifactStore, tree: Path, tmp_path: Path) -> None:
    files = put_tree(store, tree)
    assert sorted(files) == sorted(TREE)
    assert files["a.txt"] == {"sha256": hashlib.sha256(b"alpha\n").hexdigest(), "size": 6}
    dest = store.materialize(files, tmp_path / "out" / "model")
    assert dest == tmp_path / "out" / "model"
    for rel, data in TREE.items():
        assert (dest / rel).read_bytes() == data
    assert (dest / ".dockyard-complete").exists()
    # only the destination: no temporary directory is left next to it
    assert [p.name for p in dest.parent.iterdir()] == ["model"]


def test_materialize_verifies(store: ArtifactStore, tree: Path, tmp_path: Path) -> None:
    files = put_tree(store, tree)
    corrupt(store.path(files["sub/b.bin"]["sha256"]))
    dest = tmp_path / "out" / "model"
    with pytest.raises(ChecksumMismatch):
        store.materialize(files, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_materialize_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    files = {"m.bin": {"sha256": hashlib.sha256(b"gone").hexdigest(), "size": 4}}
    with pytest.raises(NotFound):
        store.materialize(files, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- code snapshots -------------------------------------------------------------------------
def test_pack_is_reproducible(tmp_path: Path) -> None:
    code = make_tree(tmp_path / "code", {"train.py": b"print(1)\n", "lib/util.py": b"X = 1\n"})
    first = pack(code)
    for path in code.rglob("*"):
        os.utime(path, ns=(123_456_789_000, 123_456_789_000))
    assert pack(code) == first
    copy = make_tree(tmp_path / "copy", {"lib/util.py": b"X = 1\n", "train.py": b"print(1)\n"})
    assert pack(copy) == first
    (code / "train.py").write_bytes(b"print(2)\n")
    assert pack(code) != first


def test_pack_skips_caches_and_git(tmp_path: Path) -> None:
    code = make_tree(
        tmp_path / "code",
        {
            "train.py": b"",
            "__pycache__/train.cpython-311.pyc": b"\0",
            ".git/config": b"",
            "pkg/__pycache__/x.pyc": b"\0",
            "pkg/x.py": b"",
        },
    )
    with tarfile.open(fileobj=io.BytesIO(pack(code)), mode="r:gz") as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 for m in tar.getmembers())
    assert sorted(names) == ["pkg/x.py", "train.py"]


def test_pack_keeps_the_executable_bit(tmp_path: Path) -> None:
    code = make_tree(tmp_path / "code", {"run.sh": b"#!/bin/sh\n", "data.txt": b""})
    (code / "run.sh").chmod(0o755)
    (code / "data.txt").chmod(0o644)
    with tarfile.open(fileobj=io.BytesIO(pack(code)), mode="r:gz") as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes == {"run.sh": 0o755, "data.txt": 0o644}


def test_pack_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="does not exist"):
        pack(tmp_path / "nope")


@pytest.fixture
def code_store(store: ArtifactStore, tmp_path: Path) -> CodeStore:
    return CodeStore(store, tmp_path / "code-cache")


def test_code_store_round_trip(code_store: CodeStore, tmp_path: Path) -> None:
    code = make_tree(tmp_path / "code", {"train.py": b"print(1)\n", "lib/u.py": b"U = 2\n"})
    (code / "train.py").chmod(0o755)
    data = pack(code)
    ref = code_store.put(data)
    assert ref == CODE_PREFIX + hashlib.sha256(data).hexdigest()
    assert code_store.exists(ref)
    assert not code_store.exists(ref.removeprefix(CODE_PREFIX))
    assert not code_store.exists(CODE_PREFIX + "0" * 64)
    out = code_store.unpacked(ref)
    assert (out / "train.py").read_bytes() == b"print(1)\n"
    assert (out / "lib" / "u.py").read_bytes() == b"U = 2\n"
    assert os.access(out / "train.py", os.X_OK)
    assert code_store.unpacked(ref) == out  # unpacked once


def test_code_store_unpacked_verifies(code_store: CodeStore, tmp_path: Path) -> None:
    ref = code_store.put(pack(make_tree(tmp_path / "code", {"a.py": b""})))
    corrupt(code_store.artifacts.path(ref.removeprefix(CODE_PREFIX)))
    with pytest.raises(ChecksumMismatch):
        code_store.unpacked(ref)


@pytest.mark.parametrize(
    "data", [b"", b"just some bytes", gzip.compress(b"gzip but not a tar" * 40)]
)
def test_code_store_refuses_non_archives(code_store: CodeStore, data: bytes) -> None:
    with pytest.raises(InvalidRequest, match=r"not a tar\.gz"):
        code_store.put(data)
    assert not (code_store.artifacts.root / "sha256").exists()


def test_code_store_refuses_links(code_store: CodeStore) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("evil")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(InvalidRequest, match="non-file: evil"):
        code_store.put(buf.getvalue())


def tarball(members: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar.gz of ``{name: (data, mode)}``; a name ending in ``/`` is a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.uid, info.gid, info.uname = mode, 4242, 4242, "nobody-here"
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("name", ["/etc/evil", "../evil", "a/../../evil", "a/.."])
def test_code_store_refuses_paths_outside(code_store: CodeStore, name: str) -> None:
    with pytest.raises(InvalidRequest, match=r"code archive holds an? .*evil|outside"):
        code_store.put(tarball({name: (b"x", 0o644)}))


@pytest.mark.parametrize("data_filter", [True, False], ids=["3.11.4+", "3.11.0-3"])
def test_safe_extract_on_every_python_311(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_filter: bool
) -> None:
    """The same files and modes with the ``data`` filter and without it (before 3.11.4)."""
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter")
    data = tarball(
        {
            "pkg/": (b"", 0o777),
            "pkg/run.sh": (b"#!/bin/sh\n", 0o4777),
            "pkg/data.txt": (b"d", 0o666),
            "readonly.txt": (b"r", 0o444),
            "odd.txt": (b"o", 0o011),
        }
    )
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        safe_extract(tar, tmp_path / "out")
    out = tmp_path / "out"
    modes = {p: stat.S_IMODE((out / p).stat().st_mode) for p in ("pkg/run.sh", "pkg/data.txt")}
    assert modes == {"pkg/run.sh": 0o755, "pkg/data.txt": 0o644}
    assert stat.S_IMODE((out / "readonly.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "odd.txt").stat().st_mode) == 0o600
    assert (out / "pkg" / "run.sh").read_bytes() == b"#!/bin/sh\n"
    assert (out / "pkg").stat().st_uid == os.geteuid()  # never chowned to the archive's owner
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w") as tar:
        info = tarfile.TarInfo("hard")
        info.type, info.linkname = tarfile.LNKTYPE, "pkg/run.sh"
        tar.addfile(info)
    link.seek(0)
    with tarfile.open(fileobj=link) as tar, pytest.raises(ValueError, match="non-file: hard"):
        safe_extract(tar, tmp_path / "linked")
    assert not (tmp_path / "linked").exists()


# -- datasets -------------------------------------------------------------------------------
WHAT = "dataset 'ds'"


def volume_of(tmp_path: Path) -> Inside:
    return Inside(tmp_path / "volume")


def staged(tmp_path: Path, files: dict[str, bytes]) -> str:
    rel = datasets.staging_dir(volume_of(tmp_path), "ds")
    make_tree(tmp_path / "volume" / rel, files)
    return rel


def committed(tmp_path: Path, files: dict[str, bytes] = TREE) -> tuple[Path, dict[str, Any]]:
    result = datasets.commit(volume_of(tmp_path), staged(tmp_path, files), "ds", None, WHAT)
    return tmp_path / "volume" / "ds", result


def test_commit_moves_staging_into_place(tmp_path: Path) -> None:
    target, result = committed(tmp_path)
    assert sorted(result["files"]) == sorted(TREE)
    assert result["sha256"] == manifest_digest(manifest(target))
    assert (target / "sub" / "b.bin").read_bytes() == TREE["sub/b.bin"]
    assert [p.name for p in target.parent.iterdir()] == ["ds"]


def test_commit_with_the_right_checksum_replaces_the_old_data(tmp_path: Path) -> None:
    target, _ = committed(tmp_path, {"old.txt": b"old"})
    staging = staged(tmp_path, {"new.txt": b"new"})
    expected = manifest_digest(manifest(tmp_path / "volume" / staging))
    result = datasets.commit(volume_of(tmp_path), staging, "ds", expected, WHAT)
    assert result["sha256"] == expected
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in target.parent.iterdir()] == ["ds"]


def test_commit_refuses_a_wrong_checksum(tmp_path: Path) -> None:
    target, first = committed(tmp_path, {"old.txt": b"old"})
    staging = staged(tmp_path, {"new.txt": b"new"})
    with pytest.raises(ChecksumMismatch) as info:
        datasets.commit(volume_of(tmp_path), staging, "ds", "0" * 64, WHAT)
    assert "does not match spec.sha256 " + "0" * 64 in info.value.message
    assert (target / "old.txt").read_bytes() == b"old"
    assert not (target / "new.txt").exists()
    assert not (tmp_path / "volume" / staging).exists()
    assert manifest_digest(manifest(target)) == first["sha256"]


def test_commit_refuses_nothing(tmp_path: Path) -> None:
    staging = datasets.staging_dir(volume_of(tmp_path), "ds")
    with pytest.raises(DockyardError, match="produced no files"):
        datasets.commit(volume_of(tmp_path), staging, "ds", None, WHAT)
    assert not (tmp_path / "volume" / "ds").exists()


def test_commit_again_after_a_crash_rereads_the_target(tmp_path: Path) -> None:
    _, first = committed(tmp_path)
    again = datasets.commit(volume_of(tmp_path), "gone-staging", "ds", None, WHAT)
    assert again["sha256"] == first["sha256"]


def verify(tmp_path: Path, files: dict[str, Any]) -> None:
    datasets.verify(volume_of(tmp_path), "ds", files, WHAT)


def test_verify_accepts_an_untouched_tree(tmp_path: Path) -> None:
    target, result = committed(tmp_path)
    verify(tmp_path, result["files"])
    # a changed time with the same content is fine too
    os.utime(target / "a.txt", ns=(1, 1))
    verify(tmp_path, result["files"])


def _verify_error(tmp_path: Path, files: dict[str, Any]) -> str:
    with pytest.raises(ChecksumMismatch) as info:
        verify(tmp_path, files)
    return info.value.message


def test_verify_detects_changed_content(tmp_path: Path) -> None:
    target, result = committed(tmp_path)
    path = target / "a.txt"
    before = path.stat().st_mtime_ns
    path.write_bytes(b"ALPHA\n")  # same size
    os.utime(path, ns=(before + 10**9, before + 10**9))
    message = _verify_error(tmp_path, result["files"])
    assert message.startswith("dataset 'ds' changed on its volume since it was checksummed: ")
    assert message.endswith("a.txt changed content")


def test_verify_detects_changed_size(tmp_path: Path) -> None:
    target, result = committed(tmp_path)
    (target / "sub" / "deeper" / "c.csv").write_bytes(b"1,2\n")
    assert "sub/deeper/c.csv changed size" in _verify_error(tmp_path, result["files"])


def test_verify_detects_added_and_removed_files(tmp_path: Path) -> None:
    target, result = committed(tmp_path)
    (target / "sub" / "extra.txt").write_bytes(b"")
    assert _verify_error(tmp_path, result["files"]).endswith("sub/extra.txt added")
    (target / "sub" / "extra.txt").unlink()
    (target / "a.txt").unlink()
    assert _verify_error(tmp_path, result["files"]).endswith("a.txt removed")


def test_verify_missing_directory(tmp_path: Path) -> None:
    target, result = committed(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    target.rename(tmp_path / "elsewhere" / "ds")
    assert "is gone" in _verify_error(tmp_path, result["files"])


def test_verify_accepts_a_tree_with_ignored_names(tmp_path: Path) -> None:
    _, result = committed(tmp_path, {"data.csv": b"1\n", ".DS_Store": b"x"})
    verify(tmp_path, result["files"])


def fetch(source: str, tmp_path: Path, progress: Any = None) -> Path:
    volume = volume_of(tmp_path)
    volume.mkdirs("staging")
    datasets.fetch(source, volume, "staging", progress or noop, [tmp_path])
    return tmp_path / "volume" / "staging"


def test_fetch_a_directory(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", TREE)
    calls: list[tuple[int, int | None]] = []
    staging = fetch(tree.as_uri(), tmp_path, lambda d, t: calls.append((d, t)))
    assert manifest_digest(manifest(staging)) == manifest_digest(manifest(tree))
    assert calls == [(1, 1)]


def test_fetch_a_file(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", TREE)
    staging = fetch((tree / "sub" / "b.bin").as_uri(), tmp_path)
    assert [p.name for p in staging.iterdir()] == ["b.bin"]
    assert (staging / "b.bin").read_bytes() == TREE["sub/b.bin"]


def test_fetch_a_path_with_spaces(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "my data", {"x.txt": b"x"})
    staging = fetch(source.as_uri(), tmp_path)
    assert (staging / "x.txt").read_bytes() == b"x"


def test_fetch_missing_source(tmp_path: Path) -> None:
    source = (tmp_path / "missing").as_uri()
    with pytest.raises(NotFound, match="does not exist"):
        fetch(source, tmp_path)
    assert list((tmp_path / "volume" / "staging").iterdir()) == []
