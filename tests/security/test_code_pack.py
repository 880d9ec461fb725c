"""Packing ``spec.code`` on the client: only regular files and directories, within limits.

A link could pull any file of the machine into an upload (``ln -s ~/.ssh/id_rsa``); a FIFO or
a device would block or never end. Each is refused, naming the path; the limits stop a tree
before anything is read.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.data import code
from dockyard.data.code import MAX_CODE_BYTES, MAX_CODE_FILES, pack
from dockyard.errors import InvalidRequest, InvalidSpec
from tests.security.helpers import (
    JOB,
    NO_SERVER,
    assert_one_clean_error,
    dockyard,
    spec_file,
)

SECRET = b"-----BEGIN PRIVATE KEY-----\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print(1)\n")
    (root / "pkg" / "util.py").write_text("X = 1\n")
    (tmp_path / "secret").write_bytes(SECRET)
    return root


def refusal(root: Path) -> str:
    with pytest.raises(InvalidSpec) as info:
        pack(root)
    return info.value.message


def names(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return tar.getnames()


def test_a_regular_tree_packs(tree: Path) -> None:
    assert names(pack(tree)) == ["train.py", "pkg/util.py"]


@pytest.mark.parametrize(
    ("rel", "target"),
    [("key.pem", "../secret"), ("pkg/home", "/"), ("dangling", "nowhere"), ("self", ".")],
    ids=["file", "directory", "dangling", "loop"],
)
def test_symbolic_links_are_refused(tree: Path, rel: str, target: str) -> None:
    (tree / rel).symlink_to(target)
    assert refusal(tree) == (
        f"code directory {tree}: {rel} is a symbolic link; links are not packed"
    )


def test_a_fifo_is_refused_without_reading_it(tree: Path) -> None:
    os.mkfifo(tree / "pkg" / "pipe")
    assert refusal(tree) == (
        f"code directory {tree}: pkg/pipe is a FIFO, not a regular file or directory"
    )


@pytest.fixture
def unix_socket(tree: Path) -> Iterator[Path]:
    path = tree / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        yield path


def test_a_socket_is_refused(tree: Path, unix_socket: Path) -> None:
    assert (
        refusal(tree) == f"code directory {tree}: sock is a socket, not a regular file or directory"
    )


def test_links_in_ignored_directories_do_not_matter(tree: Path) -> None:
    (tree / ".venv" / "bin").mkdir(parents=True)
    (tree / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    os.mkfifo(tree / "__pycache__")
    assert names(pack(tree)) == ["train.py", "pkg/util.py"]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("new\nline.py", "holds a name with a control character: new\\nline.py"),
        ("esc\x1b[31m.py", "holds a name with a control character: esc\\x1b[31m.py"),
        (os.fsdecode(b"caf\xe9.py"), "holds a name that is not UTF-8: caf\\udce9.py"),
    ],
    ids=["newline", "escape", "latin-1"],
)
def test_names_that_cannot_be_shown_or_stored_are_refused(tree: Path, name: str, says: str) -> None:
    (tree / name).write_text("")
    assert refusal(tree) == f"code directory {tree}: {says}"


def test_too_many_files(tree: Path) -> None:
    many = tree / "many"
    many.mkdir()
    for i in range(MAX_CODE_FILES):
        (many / f"{i}.txt").touch()
    assert refusal(tree) == (
        f"code directory {tree} holds more than {MAX_CODE_FILES:,} files and directories"
    )


def test_too_many_bytes_is_refused_before_anything_is_read(tree: Path) -> None:
    big = tree / "big.bin"
    with open(big, "wb") as fh:  # sparse: no disk used, and never read
        fh.truncate(MAX_CODE_BYTES + 1)
    assert refusal(tree) == f"code directory {tree} holds more than 200 MiB"


def test_limits_are_read_when_packing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code, "MAX_CODE_FILES", 2)
    assert "holds more than 2 files and directories" in refusal(tree)


# -- through the client and the CLI: the spec file and the line of spec.code -----------------
def code_spec(tmp_path: Path) -> Path:
    return spec_file(tmp_path, JOB + "  code: ./code\n")


def test_the_client_names_the_spec_line(tmp_path: Path, tree: Path) -> None:
    (tree / "key.pem").symlink_to("../secret")
    path = code_spec(tmp_path)
    with Client(NO_SERVER) as client, pytest.raises(InvalidSpec) as info:
        client.apply_paths([path])
    assert info.value.message == (
        f"{path}:7 spec.code: code directory {tree}: key.pem is a symbolic link; "
        "links are not packed"
    )
    assert info.value.details["errors"][0]["line"] == 7


def test_the_servers_refusal_names_the_spec_line(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Client, archive: bytes) -> str:
        raise InvalidRequest("code archive holds a non-file: x", hint="only files")

    monkeypatch.setattr(Client, "upload_code", refuse)
    path = code_spec(tmp_path)
    with Client(NO_SERVER) as client, pytest.raises(InvalidSpec) as info:
        client.apply_paths([path])
    assert info.value.message == f"{path}:7 spec.code: code archive holds a non-file: x"
    assert info.value.hint == "only files"


def test_cli_does_not_hang_on_a_fifo_in_the_code(tmp_path: Path, tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    path = code_spec(tmp_path)
    run = dockyard(tmp_path / "home", "apply", "-f", str(path), "--dry-run")
    error = assert_one_clean_error(run, path, 7)
    assert error.endswith(
        f"spec.code: code directory {tree}: pipe is a FIFO, not a regular file or directory"
    )
