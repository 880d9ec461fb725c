"""The drill: back up the digits example (its volumes and the control plane's own store) to
S3, lose DOCKYARD_HOME, restore it from the bucket on an empty home, and get the same
registry, datasets and checkpoints (same checksums) and the same predictions."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.conftest import S3Server
from tests.e2e.conftest import CLI


def checksums(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.slow
def test_backup_lose_the_home_restore_and_serve_the_same(
    cli: CLI, home: Path, s3_server: S3Server
) -> None:
    cli.env.update(s3_server.env)  # the fixture stops the server whatever happens
    drill(cli, home, s3_server.bucket())


def drill(cli: CLI, home: Path, bucket: str) -> None:
    cli("apply", "-f", "examples/digits/", "--wait")
    request = ("predict", "digits", "--file", "examples/digits/sample-request.json")
    before = cli.json(*request)
    assert before["outputs"][0]["data"] == [8]  # type: ignore[index]
    kept = {
        "registry": checksums(home / "models"),
        "datasets": checksums(home / "volumes" / "default" / "digits-data"),
        "checkpoints": checksums(home / "volumes" / "default" / "digits-checkpoints"),
    }
    assert kept["registry"] and kept["datasets"] and kept["checkpoints"]
    versions = cli.json("models", "list")
    out = cli("backup", "--to", f"s3://{bucket}/dr").stdout
    assert "backed up 2 volume(s) and the control plane" in out
    cli("server", "stop")

    shutil.rmtree(home)  # the disaster
    out = cli("restore", "--from", f"s3://{bucket}/dr").stdout
    assert "restored the control plane" in out and "2 volume(s)" in out
    assert checksums(home / "models") == kept["registry"]
    assert checksums(home / "volumes" / "default" / "digits-data") == kept["datasets"]
    restored = checksums(home / "volumes" / "default" / "digits-checkpoints")
    assert restored == kept["checkpoints"]
    again = cli("apply", "-f", "examples/digits/", "--wait").stdout
    assert "created" not in again  # everything was already there
    assert cli.json("models", "list") == versions
    after = cli.json(*request)
    assert after["outputs"] == before["outputs"]  # type: ignore[index]
    job = cli.json("get", "job", "train-digits")
    assert job["status"]["phase"] == "Succeeded"  # type: ignore[index]
    # a second restore on a home that holds a control plane is refused, nothing touched
    refused = cli("restore", "--from", f"s3://{bucket}/dr", ok=False)
    assert "server runs" in refused.stderr or "already holds" in refused.stderr
