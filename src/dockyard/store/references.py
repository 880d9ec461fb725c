"""The index of references: who names whom, kept at apply, read by the in-use checks."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dockyard.store.tables import ReferenceRow, ResourceRow


def replace(session: Session, uid: str, project: str, refs: Iterable[tuple[str, str]]) -> None:
    """What the resource ``uid`` references now (its previous references are dropped)."""
    session.execute(delete(ReferenceRow).where(ReferenceRow.uid == uid))
    for kind, name in sorted(set(refs)):
        session.add(ReferenceRow(uid=uid, kind=kind, name=name, project=project))


def users(session: Session, project: str, kind: str, name: str) -> list[ResourceRow]:
    """Live resources of ``project`` whose specs name ``kind``/``name``."""
    stmt = (
        select(ResourceRow)
        .join(ReferenceRow, ReferenceRow.uid == ResourceRow.uid)
        .where(
            ReferenceRow.project == project,
            ReferenceRow.kind == kind,
            ReferenceRow.name == name,
            ResourceRow.deleted_at.is_(None),
        )
        .order_by(ResourceRow.kind, ResourceRow.name)
    )
    return list(session.scalars(stmt))


def forget(session: Session, uid: str) -> None:
    session.execute(delete(ReferenceRow).where(ReferenceRow.uid == uid))


def indexed(session: Session) -> bool:
    return session.scalar(select(ReferenceRow.uid).limit(1)) is not None
