"""Reading and writing resources: apply with generations, status, deletion."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dockyard.errors import Conflict, NotFound
from dockyard.errors import StaleWrite as StaleWrite  # noqa: PLC0414 (re-export: repo.StaleWrite)
from dockyard.spec import AnyResource
from dockyard.store import references
from dockyard.store.tables import ReferenceRow, ResourceRow, TaskRow, utcnow

ApplyAction = Literal["created", "configured", "unchanged"]


@dataclass(frozen=True)
class Key:
    kind: str
    project: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}'" + (
            f" in project '{self.project}'" if self.project != "default" else ""
        )


def get(session: Session, key: Key, *, include_deleted: bool = True) -> ResourceRow | None:
    row = session.scalar(
        select(ResourceRow).where(
            ResourceRow.kind == key.kind,
            ResourceRow.project == key.project,
            ResourceRow.name == key.name,
        )
    )
    if row is not None and row.deleted_at is not None and not include_deleted:
        return None
    return row


def require(session: Session, key: Key) -> ResourceRow:
    row = get(session, key)
    if row is None:
        raise NotFound(
            f"{key} not found", hint=f"list what exists with: dockyard get {key.kind.lower()}s"
        )
    return row


def by_uid(session: Session, uid: str) -> ResourceRow | None:
    return session.get(ResourceRow, uid)


def list_rows(
    session: Session,
    kind: str | None = None,
    project: str | None = None,
    selector: dict[str, str] | None = None,
) -> list[ResourceRow]:
    stmt = select(ResourceRow).order_by(ResourceRow.kind, ResourceRow.created_at, ResourceRow.name)
    if kind is not None:
        stmt = stmt.where(ResourceRow.kind == kind)
    if project is not None:
        stmt = stmt.where(ResourceRow.project == project)
    rows = list(session.scalars(stmt))
    if selector:
        rows = [r for r in rows if all(r.labels.get(k) == v for k, v in selector.items())]
    return rows


def apply(session: Session, resource: AnyResource) -> tuple[ResourceRow, ApplyAction]:
    """Record desired state. Same spec → unchanged; a new spec bumps ``generation``.

    The update only lands if the generation is still the one read (optimistic concurrency);
    otherwise :class:`StaleWrite` asks the caller to read again and retry.
    """
    key = Key(resource.kind, resource.project, resource.name)
    spec = resource.spec_dict()
    labels, annotations = resource.metadata.labels, resource.metadata.annotations
    row = get(session, key)
    now = utcnow()
    if row is None:
        row = ResourceRow(
            uid=uuid.uuid4().hex,
            kind=key.kind,
            project=key.project,
            name=key.name,
            generation=1,
            spec=spec,
            labels=labels,
            annotations=annotations,
            status={},
            created_at=now,
            updated_at=now,
            control={},
        )
        session.add(row)
        session.flush()
        return row, "created"
    if row.deleted_at is not None:
        raise Conflict(
            f"{key} is being deleted",
            hint="wait until `dockyard get` no longer lists it, then apply again",
        )
    if row.spec == spec and row.labels == labels and row.annotations == annotations:
        return row, "unchanged"
    generation = row.generation + (1 if row.spec != spec else 0)
    result = session.execute(
        update(ResourceRow)
        .where(
            ResourceRow.uid == row.uid,
            ResourceRow.generation == row.generation,
            ResourceRow.deleted_at.is_(None),
        )
        .values(
            spec=spec, generation=generation, labels=labels, annotations=annotations, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        raise StaleWrite(f"{key} changed while it was being applied", hint="apply again")
    session.expire(row)
    session.refresh(row)
    return row, "configured"


def set_status(
    session: Session, uid: str, status: dict[str, Any], read_version: int | None = None
) -> int:
    """Write a resource's status; with ``read_version``, only over the status that version
    was (else StaleWrite: someone wrote since — plan again). The new version."""
    query = update(ResourceRow).where(ResourceRow.uid == uid)
    if read_version is not None:
        query = query.where(ResourceRow.status_version == read_version)
    result = session.execute(
        query.values(
            status=status, status_version=ResourceRow.status_version + 1
        ).execution_options(synchronize_session=False)
    )
    if read_version is not None and not getattr(result, "rowcount", 0):
        raise StaleWrite(f"the status of {uid} changed since it was read", details={"uid": uid})
    return (read_version or 0) + 1


def mark_deleted(session: Session, row: ResourceRow, options: dict[str, Any]) -> None:
    if row.deleted_at is None:
        row.deleted_at = utcnow()
        row.control = {**row.control, **options}


def set_control(session: Session, row: ResourceRow, **values: Any) -> None:
    """Operator requests that are not spec (cancel a job, purge data on delete)."""
    row.control = {**row.control, **values}


def purge_many(session: Session, uids: list[str]) -> None:
    """Drop resources that hold nothing else (no workloads), with their tasks and references."""
    for first in range(0, len(uids), 500):
        chunk = uids[first : first + 500]
        session.execute(delete(TaskRow).where(TaskRow.owner_uid.in_(chunk)))
        session.execute(delete(ReferenceRow).where(ReferenceRow.uid.in_(chunk)))
        session.execute(delete(ResourceRow).where(ResourceRow.uid.in_(chunk)))


def purge(session: Session, uid: str) -> None:
    row = session.get(ResourceRow, uid)
    if row is not None:
        session.delete(row)
    references.forget(session, uid)
