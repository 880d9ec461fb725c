"""Backups to a real S3 server (moto's server mode): every new snapshot pushed, only missing
chunks uploaded, sealed with a passphrase from a secret; a wrong key or a missing bucket
named."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.data.backups import Target
from dockyard.data.snapshots import SnapshotStore
from dockyard.errors import BackupError, ChunkDamaged
from dockyard.settings import Settings
from tests.conftest import S3Server, ServerProcess, wait_until
from tests.factories import volume

MARKER = b"PLAINTEXT-MARKER-" * 4096


def _objects(s3: S3Server, bucket: str) -> dict[str, bytes]:
    client: Any = s3.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


@pytest.fixture
def backed_server(server_factory: Any, s3_server: S3Server) -> ServerProcess:
    srv: ServerProcess = server_factory(**s3_server.env)
    srv.start()
    return srv


def test_every_snapshot_is_pushed_sealed_and_incremental(
    backed_server: ServerProcess, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = backed_server.client
    bucket = s3_server.bucket()
    client.set_secret("backup-key", {"passphrase": "correct horse battery staple"})
    target = f"s3://{bucket}/team/ckpt"
    spec = {"target": target, "encryption": {"secretRef": "backup-key/passphrase"}}
    client.apply([volume("ckpt", backup=spec)])
    client.wait("Volume", "ckpt")
    root = Path(client.get("Volume", "ckpt")["status"]["path"])
    (root / "epoch-1.pt").write_bytes(MARKER)
    (root / "big.bin").write_bytes(bytes(range(256)) * 20_000)
    time.sleep(0.15)
    first = client.snapshot_volume("ckpt")["status"]["lastSnapshot"]

    def backed_up(sid: str) -> bool:
        return client.get("Volume", "ckpt")["status"].get("lastBackup") == sid

    wait_until(lambda: backed_up(first), 60, message="the first backup")
    objects = _objects(s3_server, bucket)
    chunks = [k for k in objects if "/chunks/" in k]
    assert any(k.endswith(f"snapshots/default/ckpt/{first}") for k in objects)
    assert chunks and not any(b"PLAINTEXT-MARKER" in body for body in objects.values())
    assert not any("default/ckpt" in k and b"epoch-1.pt" in v for k, v in objects.items())

    (root / "epoch-2.pt").write_bytes(b"second epoch")
    time.sleep(0.15)
    second = client.snapshot_volume("ckpt")["status"]["lastSnapshot"]
    wait_until(lambda: backed_up(second), 60, message="the second backup")
    added = [k for k in _objects(s3_server, bucket) if "/chunks/" in k and k not in chunks]
    assert len(added) == 1  # only the new file's chunk went up
    view = client.get("Volume", "ckpt")["status"]
    assert view["backupTarget"] == target and view["lastBackupAt"]
    listed = client.volume_snapshots("ckpt")
    assert [s["backedUp"] for s in listed] == [True, True]

    # the bucket alone brings it back, with the passphrase only
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(home=backed_server.home, s3_endpoint_url=s3_server.endpoint)
    store = SnapshotStore(backed_server.home.parent / "elsewhere")
    with pytest.raises(BackupError, match="wrong passphrase"):
        Target.open(settings, target, "not the passphrase", create=False)
    with pytest.raises(BackupError, match="encrypted"):
        Target.open(settings, target, None, create=False)
    pulled = Target.open(settings, target, "correct horse battery staple", create=False)
    pulled.pull(store, "default/ckpt", second)
    store.restore("default/ckpt", second, backed_server.home.parent / "restored")
    assert (backed_server.home.parent / "restored" / "epoch-1.pt").read_bytes() == MARKER


def test_a_damaged_object_in_the_bucket_is_refused(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket()
    source = tmp_path / "vol"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"w" * 500_000)
    store = SnapshotStore(tmp_path / "store")
    snap = store.snapshot(source, "p/v")
    settings = Settings(home=tmp_path / "home")
    Target.open(settings, f"s3://{bucket}/x", None).push(store, "p/v", [snap.id])
    client: Any = s3_server.client()
    key = next(k for k in _objects(s3_server, bucket) if "/chunks/" in k)
    client.put_object(Bucket=bucket, Key=key, Body=b"\x00" + b"x" * 100)  # the wrong bytes
    with pytest.raises(ChunkDamaged, match=r"does not match|damaged"):
        Target.open(settings, f"s3://{bucket}/x", None).pull(
            SnapshotStore(tmp_path / "other"), "p/v", snap.id
        )


def test_a_missing_bucket_fails_the_backup_and_says_so(
    backed_server: ServerProcess, s3_server: S3Server
) -> None:
    client = backed_server.client
    client.apply([volume("data", backup={"target": "s3://no-such-bucket/x"})])
    client.wait("Volume", "data")
    client.snapshot_volume("data")

    def says() -> bool:
        message = str(client.get("Volume", "data")["status"].get("message", ""))
        return "backup failed" in message and "does not exist" in message

    wait_until(says, 60, message="the backup failure in the status")


def test_a_large_object_goes_up_in_parts_and_comes_back_whole(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dockyard.data import backups

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(backups, "MULTIPART", 5 * 1024 * 1024)  # S3's smallest part
    bucket = s3_server.bucket()
    target = Target.open(Settings(home=tmp_path / "home"), f"s3://{bucket}/big", None)
    data = bytes(range(256)) * (11 * 1024 * 1024 // 256)  # 11 MiB: three parts
    target.put_object("store.db", data)
    client: Any = s3_server.client()
    etag = client.head_object(Bucket=bucket, Key="big/store.db")["ETag"]
    assert etag.strip('"').endswith("-3")  # a multipart upload's ETag counts its parts
    assert target.get_object("store.db") == data
