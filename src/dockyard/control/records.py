"""The rows of the store as the control loop reads them: plain, typed data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class ResourceRecord:
    """A resource as the loop read it (plain data; the applier updates ``status``)."""

    uid: str
    kind: str
    project: str
    name: str
    generation: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    spec: dict[str, Any]
    labels: dict[str, Any]
    annotations: dict[str, Any]
    status: dict[str, Any]
    control: dict[str, Any]
    status_version: int = 0


@dataclass(slots=True)
class WorkloadRecord:
    id: str
    owner_uid: str
    owner_kind: str
    role: str
    generation: int
    number: int
    runtime: str
    phase: str
    exit_code: int | None
    reason: str
    message: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    request: dict[str, Any]
    details: dict[str, Any]
