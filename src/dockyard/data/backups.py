"""Backups of snapshots to S3-compatible storage (boto3): only missing chunks are uploaded.

Layout under ``s3://BUCKET/PREFIX``::

    config                      format, whether it is encrypted, salt, a passphrase check
    chunks/<aa>/<name>          a chunk as stored locally (sealed when encrypted)
    snapshots/<key>/<id>        a manifest (sealed when encrypted)

Chunks go first, the manifest last: a manifest in the bucket never names a chunk that is
not there. With a passphrase, objects are sealed with AES-256-GCM under a key derived with
scrypt, and a chunk is named by HMAC-SHA256 of its checksum, so the bucket shows neither
content nor the checksums of known files. Downloads are checked twice: the seal (when
encrypted) and the chunk's checksum.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from dockyard.data.snapshots import Snapshot, SnapshotStore
from dockyard.errors import BackupError, ChunkDamaged, InvalidRequest, NotFound
from dockyard.settings import Settings

FORMAT = 1
MULTIPART = 64 << 20
"""Objects larger than this go up in parts (a large manifest, the control plane's store)."""
_CHECK = b"dockyard-backup-check"


def parse(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``."""
    if not url.startswith("s3://"):
        raise InvalidRequest(f"expected s3://BUCKET/PREFIX, got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise InvalidRequest(f"expected a bucket after s3://, got {url!r}")
    return bucket, prefix.strip("/")


@dataclass
class Seal:
    """AES-256-GCM with a key from the passphrase; names by HMAC."""

    key: bytes
    mac: bytes

    @classmethod
    def derive(cls, passphrase: str, salt: bytes) -> Seal:
        raw = hashlib.scrypt(passphrase.encode(), salt=salt, n=2**15, r=8, p=1, maxmem=64 << 20)
        return cls(hashlib.sha256(b"enc" + raw).digest(), hashlib.sha256(b"mac" + raw).digest())

    def name(self, chunk: str) -> str:
        return hmac.new(self.mac, chunk.encode(), hashlib.sha256).hexdigest()

    def check(self) -> str:
        return hmac.new(self.mac, _CHECK, hashlib.sha256).hexdigest()

    def seal(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, data, None)

    def open(self, data: bytes, what: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(self.key).decrypt(data[:12], data[12:], None)
        except (InvalidTag, ValueError):
            raise ChunkDamaged(
                f"{what} does not decrypt: damaged, or sealed with another key"
            ) from None


def client(settings: Settings) -> Any:
    """A boto3 S3 client for DOCKYARD_S3_ENDPOINT_URL (unset: AWS), retrying."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 6, "mode": "standard"},
        max_pool_connections=max(10, settings.backup_workers * 2),
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.s3_endpoint_url, config=config
    )


def explain(exc: Exception, url: str) -> BackupError:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    if isinstance(exc, NoCredentialsError):
        return BackupError(
            f"no credentials for {url}",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the server",
        )
    if isinstance(exc, EndpointConnectionError):
        return BackupError(
            f"cannot reach the S3 endpoint for {url}: {exc}",
            hint="check DOCKYARD_S3_ENDPOINT_URL and the network",
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return BackupError(
                f"the bucket of {url} does not exist", hint="create it first (aws s3 mb)"
            )
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return BackupError(f"{url}: access denied ({code})", hint="check the credentials")
        return BackupError(f"{url}: the S3 server answered {code or exc}")
    if isinstance(exc, BotoCoreError):
        return BackupError(f"{url}: {exc}")
    raise exc


class Target:
    """One backup location: a bucket and prefix, maybe sealed."""

    def __init__(self, client: Any, url: str, seal: Seal | None, workers: int) -> None:
        self.client = client
        self.url = url
        self.bucket, self.prefix = parse(url)
        self.seal = seal
        self.workers = workers
        self._have: set[str] | None = None

    @classmethod
    def open(
        cls, settings: Settings, url: str, passphrase: str | None, create: bool = True
    ) -> Target:
        """The target at ``url``; its config is written on first use (``create``), and a
        passphrase that does not match it (or is missing) is refused."""
        target = cls(client(settings), url, None, settings.backup_workers)
        raw = target._get("config", missing_ok=True)
        if raw is None:
            if not create:
                raise NotFound(f"no Dockyard backup at {url}", hint="check the URL")
            salt = secrets.token_bytes(16)
            config: dict[str, Any] = {"format": FORMAT, "encrypted": passphrase is not None}
            if passphrase is not None:
                seal = Seal.derive(passphrase, salt)
                config |= {"salt": base64.b64encode(salt).decode(), "check": seal.check()}
                target.seal = seal
            target._put("config", orjson.dumps(config))
            return target
        config = orjson.loads(raw)
        if config.get("encrypted"):
            if passphrase is None:
                raise BackupError(
                    f"the backup at {url} is encrypted", hint="give its passphrase (a secret)"
                )
            seal = Seal.derive(passphrase, base64.b64decode(config["salt"]))
            if not hmac.compare_digest(seal.check(), config["check"]):
                raise BackupError(f"wrong passphrase for the backup at {url}")
            target.seal = seal
        elif passphrase is not None:
            raise BackupError(
                f"the backup at {url} is not encrypted, but a passphrase was given",
                hint="use another prefix for encrypted backups",
            )
        return target

    # objects ------------------------------------------------------------------------------
    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except Exception as exc:  # botocore's errors, explained; anything else re-raised
            raise explain(exc, self.url) from exc

    def _put(self, rel: str, data: bytes) -> None:
        if len(data) > MULTIPART:
            from boto3.s3.transfer import TransferConfig

            config = TransferConfig(multipart_threshold=MULTIPART, multipart_chunksize=MULTIPART)
            self._call(
                lambda **kw: self.client.upload_fileobj(
                    io.BytesIO(data), kw["Bucket"], self._key(rel), Config=config
                )
            )
        else:
            self._call(self.client.put_object, Key=self._key(rel), Body=data)

    def _get(self, rel: str, missing_ok: bool = False) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
            data: bytes = response["Body"].read()
            return data
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404") and missing_ok:
                return None
            raise explain(exc, self.url) from exc
        except Exception as exc:
            raise explain(exc, self.url) from exc

    def _list(self, rel: str) -> Iterable[str]:
        prefix = self._key(rel)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(prefix) :]
        except Exception as exc:
            raise explain(exc, self.url) from exc

    def _delete(self, rel: str) -> None:
        self._call(self.client.delete_object, Key=self._key(rel))

    # chunks and manifests -------------------------------------------------------------------
    def _name(self, chunk: str) -> str:
        return self.seal.name(chunk) if self.seal else chunk

    def _chunk_rel(self, chunk: str) -> str:
        name = self._name(chunk)
        return f"chunks/{name[:2]}/{name}"

    def have(self) -> set[str]:
        """Names of the chunks in the bucket (listed once per target)."""
        if self._have is None:
            self._have = {rel.rpartition("/")[2] for rel in self._list("chunks/")}
        return self._have

    def ids(self, key: str) -> list[str]:
        return sorted(rel for rel in self._list(f"snapshots/{key}/") if "/" not in rel)

    def push(
        self,
        store: SnapshotStore,
        key: str,
        snapshot_ids: list[str],
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Upload the chunks of the snapshots the bucket lacks, then their manifests."""
        have = self.have()
        needed: dict[str, None] = {}
        for sid in snapshot_ids:
            for entry in store.load(key, sid).entries:
                for chunk in entry.chunks:
                    if self._name(chunk) not in have:
                        needed[chunk] = None
        sent = [0, 0]

        def upload(chunk: str) -> None:
            data = store.chunks.read_stored(chunk, f"chunk {chunk[:16]}")
            body = self.seal.seal(data) if self.seal else data
            self._put(self._chunk_rel(chunk), body)
            sent[0] += 1
            sent[1] += len(body)
            if progress:
                progress(f"uploaded {sent[0]} of {len(needed)} chunk(s)")

        with ThreadPoolExecutor(self.workers) as pool:
            for fut in [pool.submit(upload, c) for c in needed]:
                fut.result()
        have |= {self._name(c) for c in needed}
        for sid in snapshot_ids:
            stored = store.stored_manifest(key, sid)
            self._put(f"snapshots/{key}/{sid}", self.seal.seal(stored) if self.seal else stored)
        return {"chunks": sent[0], "bytes": sent[1], "snapshots": snapshot_ids}

    def pull(
        self,
        store: SnapshotStore,
        key: str,
        snapshot_id: str,
        progress: Callable[[str], None] | None = None,
    ) -> Snapshot:
        """Download a snapshot into ``store`` (only the chunks it lacks), each chunk checked."""
        raw = self._get(f"snapshots/{key}/{snapshot_id}", missing_ok=True)
        if raw is None:
            raise NotFound(f"snapshot {snapshot_id} of {key} is not in {self.url}")
        stored = self.seal.open(raw, f"the manifest of {snapshot_id}") if self.seal else raw
        store.put_manifest(key, snapshot_id, stored)
        snap = store.load(key, snapshot_id)
        missing = sorted({c for c in snap.chunk_names() if not store.chunks.has(c)})
        got = [0]

        def download(chunk: str) -> None:
            what = f"chunk {chunk[:16]} of {key}@{snapshot_id} in {self.url}"
            body = self._get(self._chunk_rel(chunk), missing_ok=True)
            if body is None:
                raise ChunkDamaged(f"{what} is missing from the bucket")
            data = self.seal.open(body, what) if self.seal else body
            store.chunks.put_stored(chunk, data, what)
            got[0] += 1
            if progress:
                progress(f"downloaded {got[0]} of {len(missing)} chunk(s)")

        with ThreadPoolExecutor(self.workers) as pool:
            for fut in [pool.submit(download, c) for c in missing]:
                fut.result()
        return snap

    def forget_except(self, key: str, keep: list[str]) -> list[str]:
        """Remove manifests of ``key`` that are not in ``keep`` (chunks stay: others share
        them); the removed ids."""
        gone = [sid for sid in self.ids(key) if sid not in set(keep)]
        for sid in gone:
            self._delete(f"snapshots/{key}/{sid}")
        return gone

    def put_object(self, rel: str, data: bytes) -> None:
        self._put(rel, self.seal.seal(data) if self.seal else data)

    def get_object(self, rel: str) -> bytes | None:
        raw = self._get(rel, missing_ok=True)
        if raw is None or self.seal is None:
            return raw
        return self.seal.open(raw, rel)
