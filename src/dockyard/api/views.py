"""How resources, events and workloads look on the wire: the response models of every route.

The models document /openapi.json; hot routes (get, list) build the same shape as plain
dicts and encode them once with orjson (``fast``), which the fuzzer checks against these
models.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import Connection, Text, cast, select

from dockyard.spec import API_VERSION, Condition, KindDescriptor, Phase
from dockyard.store.tables import EventRow, ResourceRow, WorkloadRow


class Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Problem(Camel):
    """An error, as ``application/problem+json`` (RFC 9457) with Dockyard's stable ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    hint: str | None = None
    details: dict[str, Any] | None = None


class ObjectMeta(Camel):
    name: str
    project: str
    uid: str
    generation: int
    created_at: str | None = Field(alias="createdAt")
    labels: dict[str, str]
    annotations: dict[str, str]
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")


class StatusView(Camel):
    """Every kind's status has these; each kind adds its own fields (see docs/spec.md)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    phase: Phase
    reason: str = ""
    message: str = ""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(default_factory=list)


class ResourceView(Camel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: StatusView


class ResourceList(Camel):
    items: list[ResourceView]


@functools.cache
def models_of(d: KindDescriptor) -> tuple[type[ResourceView], type[ResourceList]]:
    """A kind's resource and list models: the shared shape with the kind's own status."""
    kind: Any = Literal[d.kind]
    view = create_model(d.kind, __base__=ResourceView, kind=(kind, ...), status=(d.status, ...))
    items: Any = list[view]
    listing = create_model(f"{d.kind}List", __base__=ResourceList, items=(items, ...))
    return view, listing


class EventView(Camel):
    kind: str
    name: str
    project: str
    type: str
    reason: str
    message: str
    time: str | None


class EventList(Camel):
    items: list[EventView]


class WorkloadView(Camel):
    id: str
    role: str
    number: int
    generation: int
    phase: Phase
    exit_code: int | None = Field(alias="exitCode")
    reason: str
    message: str
    started_at: str | None = Field(alias="startedAt")
    finished_at: str | None = Field(alias="finishedAt")
    request: dict[str, Any]
    details: dict[str, Any]


class WorkloadList(Camel):
    items: list[WorkloadView]


NEW = {"phase": Phase.PENDING, "reason": "New", "message": "not reconciled yet"}


def fast(data: Any, status_code: int = 200) -> Response:
    """JSON encoded once with orjson (no re-validation of what the store already holds)."""
    return Response(orjson.dumps(data), status_code, media_type="application/json")


def ts(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def _view(row: Any, spec: Any, labels: Any, annotations: Any, status: Any) -> dict[str, Any]:
    """The wire shape of a resource; the JSON parts as values or as orjson fragments."""
    metadata: dict[str, Any] = {
        "name": row.name,
        "project": row.project,
        "uid": row.uid,
        "generation": row.generation,
        "createdAt": ts(row.created_at),
        "labels": labels,
        "annotations": annotations,
    }
    if row.deleted_at is not None:
        metadata["deletionTimestamp"] = ts(row.deleted_at)
    return {
        "apiVersion": API_VERSION,
        "kind": row.kind,
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }


def _status(status: dict[str, Any], deleted: bool) -> dict[str, Any]:
    out = dict(status) or dict(NEW)
    if deleted:
        out["phase"] = Phase.TERMINATING
    return out


def resource(row: ResourceRow) -> dict[str, Any]:
    status = _status(row.status, row.deleted_at is not None)
    return _view(row, row.spec, row.labels, row.annotations, status)


_LIST_COLUMNS = [
    *(getattr(ResourceRow, c) for c in ("kind", "project", "name", "uid", "generation")),
    ResourceRow.created_at,
    ResourceRow.deleted_at,
    *(cast(getattr(ResourceRow, c), Text).label(c) for c in ("spec", "labels", "annotations")),
    cast(ResourceRow.status, Text).label("status"),
]


def resource_list(
    connection: Connection, kind: str, project: str | None, labels: dict[str, str] | None
) -> bytes:
    """``{"items": [...]}`` of a kind, straight from the store's JSON text (a list of 1,000
    resources is built without decoding and encoding their specs and statuses again)."""
    stmt = select(*_LIST_COLUMNS).where(ResourceRow.kind == kind)
    if project is not None:
        stmt = stmt.where(ResourceRow.project == project)
    stmt = stmt.order_by(ResourceRow.created_at, ResourceRow.name)
    items = []
    for row in connection.execute(stmt):
        if labels and any(orjson.loads(row.labels).get(k) != v for k, v in labels.items()):
            continue
        if row.deleted_at is not None or row.status in (None, "", "{}"):
            status: Any = _status(orjson.loads(row.status or "{}"), row.deleted_at is not None)
        else:
            status = orjson.Fragment(row.status)
        spec, labels_, annotations = (
            orjson.Fragment(text or "{}") for text in (row.spec, row.labels, row.annotations)
        )
        items.append(_view(row, spec, labels_, annotations, status))
    return orjson.dumps({"items": items})


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
