"""``Volume``: persistent storage that workloads mount, with tiers, snapshots and backups."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from croniter import croniter
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from dockyard.spec.common import (
    COMMAND_BOUNDS,
    Bytes,
    Command,
    Name,
    Ref,
    Resource,
    SecretRef,
    SpecModel,
    describe,
)

MAX_REPLICAS = 3
"""Copies of a volume a tier may keep (``replicas``)."""
MAX_KEEP = 1000
"""Snapshots kept per period in a retention (``hourly``, ``daily``, …)."""
MAX_HOOKS = 8
"""Commands in a snapshot's ``pre`` or ``post`` hooks."""
MAX_HOOK_SECONDS = 3600
SNAPSHOT_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
S3_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]{0,512})?$")
TIERS = ("fast", "standard", "archive")
Tier = Literal["fast", "standard", "archive"]


def check_schedule(value: str | None) -> str | None:
    if value is not None and not croniter.is_valid(value):
        raise PydanticCustomError(
            "schedule",
            "expected a cron expression of 5 fields (minute hour day month weekday), such as "
            "'0 * * * *' for every hour, got {got}",
            {"got": describe(value)},
        )
    return value


class Retention(SpecModel):
    """How many snapshots to keep: the newest of each of the last N hours, days, weeks and
    months (restic's ``forget --keep-*``); the newest snapshot is always kept."""

    hourly: int = Field(default=0, ge=0, le=MAX_KEEP, description="Hours to keep one of.")
    daily: int = Field(default=0, ge=0, le=MAX_KEEP, description="Days to keep one of.")
    weekly: int = Field(default=0, ge=0, le=MAX_KEEP, description="Weeks to keep one of.")
    monthly: int = Field(default=0, ge=0, le=MAX_KEEP, description="Months to keep one of.")
    last: int = Field(default=1, ge=1, le=MAX_KEEP, description="Newest snapshots always kept.")


class Hook(SpecModel):
    command: Command = Field(description=f"Program and arguments: {COMMAND_BOUNDS}.")
    timeout_seconds: float = Field(
        default=60, gt=0, le=MAX_HOOK_SECONDS, description="Longest the hook may run."
    )


class Hooks(SpecModel):
    """Commands run inside the workloads that mount the volume, around a snapshot."""

    pre: list[Hook] = Field(
        default_factory=list, max_length=MAX_HOOKS, description="Before: e.g. sync, a DB flush."
    )
    post: list[Hook] = Field(
        default_factory=list, max_length=MAX_HOOKS, description="After: e.g. resume writes."
    )


class SnapshotPolicy(SpecModel):
    schedule: str | None = Field(
        default=None, max_length=256, description="Cron expression (UTC); unset: on request."
    )
    retention: Retention = Field(default_factory=Retention, description="What to keep.")
    hooks: Hooks = Field(default_factory=Hooks, description="Commands around each snapshot.")

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


class BackupPolicy(SpecModel):
    target: str = Field(
        max_length=600,
        description="s3://BUCKET/PREFIX of an S3-compatible store (endpoint and credentials: "
        "DOCKYARD_S3_ENDPOINT_URL and the usual AWS_* variables).",
    )
    schedule: str | None = Field(
        default=None,
        max_length=256,
        description="Cron expression (UTC) for a snapshot pushed to the target; unset: every "
        "snapshot is pushed.",
    )
    encryption: SecretRef | None = Field(
        default=None,
        description="{secretRef: SECRET/KEY}: a passphrase; chunks and manifests are sealed "
        "with AES-256-GCM and named by a keyed hash.",
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("target")
    @classmethod
    def _valid_target(cls, value: str) -> str:
        if not S3_RE.match(value):
            raise PydanticCustomError(
                "target",
                "expected s3://BUCKET/PREFIX (a bucket name of 3-63 lowercase letters, digits, "
                "dots or dashes), got {got}",
                {"got": describe(value)},
            )
        return value


class VolumeSource(SpecModel):
    """Where a new volume's first contents come from."""

    volume: Name = Field(description="The volume whose snapshot to restore.")
    snapshot: str = Field(
        pattern=SNAPSHOT_ID_RE.pattern, description="Its id (dockyard volumes snapshots NAME)."
    )


class VolumeSpec(SpecModel):
    size: Bytes | None = Field(default=None, description="Capacity, e.g. '10Gi'; at most 1 PiB.")
    tier: Tier = Field(
        default="standard",
        description="Service tier: a root directory per tier locally "
        "(DOCKYARD_TIER_<TIER>_PATH), a storage class on Kubernetes.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=MAX_REPLICAS,
        description=f"Copies the tier keeps (1-{MAX_REPLICAS}); passed to the storage class.",
    )
    snapshots: SnapshotPolicy | None = Field(
        default=None, description="Scheduled snapshots: {schedule, retention, hooks}."
    )
    backup: BackupPolicy | None = Field(
        default=None, description="Push snapshots to S3: {target, schedule, encryption}."
    )
    source: VolumeSource | None = Field(
        default=None, description="Start from a snapshot of another volume: {volume, snapshot}."
    )

    def references(self) -> list[Ref]:
        refs = []
        if self.backup is not None and self.backup.encryption is not None:
            enc = self.backup.encryption
            refs.append(Ref("spec.backup.encryption", "Secret", enc.secret, key=enc.key))
        return refs


class Volume(Resource[VolumeSpec]):
    KIND: ClassVar[str] = "Volume"
    PLURAL: ClassVar[str] = "volumes"
    kind: Literal["Volume"] = "Volume"
