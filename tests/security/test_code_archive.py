"""Code archives on the server: checked as a whole stream before they are stored, and again
with the same check when they are unpacked.

The archives are built by hand, as an attacker would: links, devices, paths outside, names
that cannot be shown, the same path twice, too many members, a gzip bomb.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from dockyard.data import code
from dockyard.data.artifacts import ArtifactStore
from dockyard.data.code import (
    CODE_PREFIX,
    MAX_CODE_BYTES,
    MAX_CODE_FILES,
    CodeStore,
)
from dockyard.errors import InvalidRequest

Member = tuple[str, bytes | int | str]  # (name, data | size of zeros | "dir"/"symlink"…)


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as they are read (a bomb costs no memory to build)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def archive(members: list[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=fmt) as tar,
    ):
        for name, what in members:
            info = tarfile.TarInfo(name)
            if what == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif what == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            elif what == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, "a.py"
                tar.addfile(info)
            elif what in ("chardev", "fifo"):
                info.type = tarfile.CHRTYPE if what == "chardev" else tarfile.FIFOTYPE
                tar.addfile(info)
            elif isinstance(what, int):
                info.size = what
                tar.addfile(info, Zeros(what))
            else:
                assert isinstance(what, bytes)
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    return CodeStore(ArtifactStore(tmp_path / "artifacts"), tmp_path / "unpacked")


def refusal(store: CodeStore, data: bytes) -> str:
    with pytest.raises(InvalidRequest) as info:
        store.put(data)
    assert not (store.artifacts.root / "sha256").exists()  # nothing was stored
    return info.value.message


def test_a_plain_archive_is_stored_and_unpacked(store: CodeStore) -> None:
    ref = store.put(archive([("pkg", "dir"), ("pkg/a.py", b"A = 1\n"), ("run.py", b"")]))
    out = store.unpacked(ref)
    assert (out / "pkg" / "a.py").read_bytes() == b"A = 1\n"


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "chardev", "fifo"])
def test_only_files_and_directories(store: CodeStore, kind: str) -> None:
    data = archive([("a.py", b""), ("evil", kind)])
    assert refusal(store, data) == (
        "code archive holds a non-file: evil (only regular files and directories may be in it)"
    )


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("/etc/cron.d/x", "an absolute path: /etc/cron.d/x"),
        ("../x", "a path outside the archive: ../x"),
        ("a/../../x", "a path outside the archive: a/../../x"),
        ("a\nb", "a name with a control character: a\\nb"),
        ("x" * 300, "a path longer than 4096 bytes or with a name longer than 255: " + "x" * 199),
    ],
)
def test_paths_stay_inside_and_printable(store: CodeStore, name: str, says: str) -> None:
    assert refusal(store, archive([(name, b"x")])).startswith(f"code archive holds {says}")


def test_names_that_are_not_utf8(store: CodeStore) -> None:
    data = archive([("caf\udce9.py", b"")], fmt=tarfile.GNU_FORMAT)
    assert refusal(store, data) == "code archive holds a name that is not UTF-8: caf\\udce9.py"


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ([("a.py", b"1"), ("a.py", b"2")], "a.py twice"),
        ([("a", b"1"), ("a/b.py", b"2")], "a path under the file a: a/b.py"),
        ([("a", b"1"), ("a", "dir")], "a as a file and as a directory"),
        ([("a/b.py", b"1"), ("a", b"2")], "a as a file and as a directory"),
    ],
)
def test_no_path_twice_or_through_a_file(
    store: CodeStore, members: list[Member], says: str
) -> None:
    assert refusal(store, archive(members)) == f"code archive holds {says}"


def test_too_many_members(store: CodeStore) -> None:
    data = archive([(f"{i}.py", b"") for i in range(MAX_CODE_FILES + 1)])
    assert refusal(store, data) == (
        f"code archive holds more than {MAX_CODE_FILES:,} files and directories"
    )


def test_a_gzip_bomb_is_refused_at_its_header(store: CodeStore) -> None:
    data = archive([("zeros.bin", MAX_CODE_BYTES + 1)])
    assert len(data) < MAX_CODE_BYTES // 100  # it is small: the bomb is in the unpacking
    assert refusal(store, data) == "code archive holds more than 200 MiB of files once unpacked"


def test_many_files_that_add_up_to_too_much(store: CodeStore) -> None:
    part = MAX_CODE_BYTES // 4 + 1
    data = archive([(f"{i}.bin", part) for i in range(4)])
    assert refusal(store, data) == "code archive holds more than 200 MiB of files once unpacked"


def test_the_decompressed_stream_is_capped(
    store: CodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers count too: a huge pax header is not a file, and still stops at the cap."""
    monkeypatch.setattr(code, "MAX_CODE_STREAM_BYTES", 64 * 1024)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a.py")
        info.pax_headers = {"comment": "x" * 200_000}
        tar.addfile(info, io.BytesIO(b""))
    assert refusal(store, buf.getvalue()) == (
        "code archive unpacks to more than 65,536 bytes (files and headers)"
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"not gzip", gzip.compress(b"not a tar" * 100), archive([("a.py", b"x")])[:-20]],
    ids=["empty", "not-gzip", "not-tar", "truncated"],
)
def test_what_is_not_a_tar_gz(store: CodeStore, data: bytes) -> None:
    assert refusal(store, data).startswith("code archive is not a tar.gz file: ")


def test_an_archive_over_the_size_limit(store: CodeStore) -> None:
    assert refusal(store, b"\0" * (MAX_CODE_BYTES + 1)) == "code archive is too large"


def test_unpacking_runs_the_same_check(store: CodeStore) -> None:
    """An archive that reached the store some other way is checked again when unpacked."""
    bad = archive([("a.py", b""), ("evil", "symlink")])
    ref = CODE_PREFIX + store.artifacts.put_bytes(bad)
    with pytest.raises(InvalidRequest) as info:
        store.unpacked(ref)
    assert info.value.message == (
        f"code {ref}: archive holds a non-file: evil (only regular files and directories may be "
        "in it)"
    )
    assert not any(store.root.iterdir())  # nothing was left unpacked
