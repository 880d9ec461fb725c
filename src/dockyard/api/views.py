"""How resources, events and workloads look on the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dockyard.spec import API_VERSION
from dockyard.store.tables import EventRow, ResourceRow, WorkloadRow


def ts(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def resource(row: ResourceRow) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": row.name,
        "project": row.project,
        "uid": row.uid,
        "generation": row.generation,
        "createdAt": ts(row.created_at),
        "labels": row.labels,
        "annotations": row.annotations,
    }
    if row.deleted_at is not None:
        metadata["deletionTimestamp"] = ts(row.deleted_at)
    status = dict(row.status) or {
        "phase": "Pending",
        "reason": "New",
        "message": "not reconciled yet",
    }
    if row.deleted_at is not None:
        status["phase"] = "Terminating"
    return {
        "apiVersion": API_VERSION,
        "kind": row.kind,
        "metadata": metadata,
        "spec": row.spec,
        "status": status,
    }


def event(row: EventRow) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "name": row.name,
        "project": row.project,
        "type": row.type,
        "reason": row.reason,
        "message": row.message,
        "time": ts(row.created_at),
    }


def workload(row: WorkloadRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "number": row.number,
        "generation": row.generation,
        "phase": row.phase,
        "exitCode": row.exit_code,
        "reason": row.reason,
        "message": row.message,
        "startedAt": ts(row.started_at),
        "finishedAt": ts(row.finished_at),
        "request": row.request,
        "details": row.details,
    }
