"""Secret rows: sealed values and their key names."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dockyard.store.tables import SecretRow, utcnow


def get(session: Session, project: str, name: str) -> SecretRow | None:
    return session.get(SecretRow, (project, name))


def listing(session: Session, project: str | None = None) -> list[SecretRow]:
    stmt = select(SecretRow).order_by(SecretRow.project, SecretRow.name)
    if project is not None:
        stmt = stmt.where(SecretRow.project == project)
    return list(session.scalars(stmt))


def put(session: Session, project: str, name: str, sealed: str, keys: list[str]) -> SecretRow:
    row = session.get(SecretRow, (project, name))
    now = utcnow()
    if row is None:
        row = SecretRow(
            project=project,
            name=name,
            sealed=sealed,
            keys={"names": keys},
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    else:
        row.sealed, row.keys, row.updated_at = sealed, {"names": keys}, now
    return row


def remove(session: Session, project: str, name: str) -> bool:
    result = session.execute(
        delete(SecretRow).where(SecretRow.project == project, SecretRow.name == name)
    )
    return bool(getattr(result, "rowcount", 0))
