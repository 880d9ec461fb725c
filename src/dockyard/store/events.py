"""Events: what happened to a resource, newest last."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockyard.store.tables import EventRow


class Named(Protocol):
    """What an event names: a stored resource row, or the control loop's record of one."""

    uid: str
    kind: str
    project: str
    name: str


def record(
    session: Session, row: Named, reason: str, message: str, type_: str = "Normal"
) -> EventRow:
    event = EventRow(
        uid=row.uid,
        kind=row.kind,
        project=row.project,
        name=row.name,
        type=type_,
        reason=reason,
        message=message,
    )
    session.add(event)
    return event


def for_resource(session: Session, uid: str, limit: int = 200) -> list[EventRow]:
    rows = session.scalars(
        select(EventRow).where(EventRow.uid == uid).order_by(EventRow.id.desc()).limit(limit)
    )
    return list(reversed(list(rows)))


def recent(session: Session, project: str | None = None, limit: int = 200) -> list[EventRow]:
    stmt = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
    if project is not None:
        stmt = stmt.where(EventRow.project == project)
    return list(reversed(list(session.scalars(stmt))))
