"""What the server writes back: one phase enum, and a status model per kind.

Resources and the workloads they run share :class:`Phase`; every set of phases the layers
above need (final, active, busy) is defined here once. Status models are what the
reconcilers plan and the API answers; they are stored as camelCase JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Phase(StrEnum):
    PENDING = "Pending"
    BUILDING = "Building"
    FETCHING = "Fetching"
    PREPARING = "Preparing"
    CHECKSUMMING = "Checksumming"
    STARTING = "Starting"
    RUNNING = "Running"
    READY = "Ready"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TERMINATING = "Terminating"


# a workload (job attempt, dataset preparation, service replica) that may still be running
ACTIVE: frozenset[str] = frozenset({Phase.STARTING, Phase.RUNNING})
# work in progress: the control loop looks again soon to show progress
BUSY: frozenset[str] = frozenset(
    {
        Phase.BUILDING,
        Phase.FETCHING,
        Phase.PREPARING,
        Phase.CHECKSUMMING,
        Phase.STARTING,
        Phase.TERMINATING,
    }
)
READY: frozenset[str] = frozenset({Phase.READY, Phase.SUCCEEDED})
# a job that reached one of these has ended: it holds nothing any more
ENDED: frozenset[str] = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})


class Condition(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    type: str
    status: str = Field(description="True, False or Unknown.")
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class Status(BaseModel):
    """What every kind reports; each kind adds its own fields."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    phase: Phase = Phase.PENDING
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    # when the current phase and reason began (kept while they stay; the applier sets it)
    since: datetime | None = None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def but(self, **changes: Any) -> Self:
        """A copy with ``changes`` (validated field names), the same type."""
        return self.model_copy(update=changes)


class VolumeStatus(Status):
    path: str | None = None
    tier: str | None = None  # where the data lives (a tier change does not move it)
    claim: str | None = None  # its claim on a cluster (namespace/name), once one exists
    files: int | None = None  # None with a claim: not measured (so never taken as empty)
    used_bytes: int | None = None
    usage_at: datetime | None = None
    snapshots: int | None = None  # how many the store keeps
    last_snapshot: str | None = None
    last_snapshot_at: datetime | None = None
    snapshot_request: int = 0  # the last `dockyard volumes snapshot` carried out
    scheduled_at: datetime | None = None  # the last schedule tick carried out
    restore_request: int = 0  # the last in-place restore carried out
    restored_from: str | None = None  # spec.source, once restored
    last_backup: str | None = None
    last_backup_at: datetime | None = None
    backup_target: str | None = None


class PreparedInfo(BaseModel):
    """An environment as built for one runtime (a venv, an image)."""

    model_config = ConfigDict(extra="allow")

    hash: str
    location: str
    python: str
    env: dict[str, str] = Field(default_factory=dict)
    seconds: float = 0.0
    built: bool = False


class EnvironmentStatus(Status):
    prepared: dict[str, PreparedInfo] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    hash: str | None = None


class DatasetVersion(BaseModel):
    """One content of a dataset: a new version each time its checksum changes."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    version: int
    sha256: str
    files: int
    bytes: int
    snapshot: str | None = None  # in the snapshot store: a pinned job restores it from there
    generation: int
    created: datetime


class DatasetStatus(Status):
    version: int | None = None  # the current content's
    versions: list[DatasetVersion] = Field(default_factory=list)
    sha256: str | None = None
    files: int | None = None
    bytes: int | None = None
    path: str | None = None
    manifest: str | None = None


class JobStatus(Status):
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    usage: dict[str, Any] | None = None
    model_version: str | None = None
    registration_error: str | None = None
    log_tail: str | None = None


class ModelStatus(Status):
    versions: int = 0
    latest: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class ServiceStatus(Status):
    replicas: int = 0
    ready_replicas: int = 0
    url: str | None = None
    endpoints: list[str] = Field(default_factory=list)
    model_version: str | None = None
    target_version: str | None = None
    restarts: int = 0
