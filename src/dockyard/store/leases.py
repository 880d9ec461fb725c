"""Named leases (the leader of the control loop), taken and renewed by compare-and-swap."""

from __future__ import annotations

import contextlib

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockyard.errors import NotLeading
from dockyard.store.tables import LeaseRow, utcnow


def read(session: Session, name: str) -> LeaseRow | None:
    return session.get(LeaseRow, name)


CHANGES = "changes"  # bumped by every replica's API writes: the leader notices them cheaply
CONTROLLER = "controller"  # held by the replica that runs the control loop


def bump(session: Session, name: str = CHANGES) -> None:
    result = session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name)
        .values(version=LeaseRow.version + 1)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        with contextlib.suppress(IntegrityError), session.begin_nested():
            session.add(LeaseRow(name=name, holder=None, version=1, ttl_seconds=0.0))


def fence(session: Session, name: str, holder: str) -> None:
    """Inside a write's own transaction: ``holder`` still holds lease ``name``, and keeps it
    until the transaction ends (the row is locked for share on PostgreSQL; SQLite writes one
    transaction at a time). NotLeading otherwise: the write must not land."""
    query = select(LeaseRow.holder).where(LeaseRow.name == name)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    current = session.execute(query).scalar_one_or_none()
    if current != holder:
        raise NotLeading(
            f"this replica no longer leads (the lease {name!r} is {current or 'free'})",
            details={"holder": current},
        )


def version(session: Session, name: str = CHANGES) -> int:
    row = session.get(LeaseRow, name)
    return row.version if row is not None else 0


def swap(
    session: Session,
    name: str,
    holder: str | None,
    ttl: float,
    expected_version: int | None,
    acquired: bool,
) -> bool:
    """Set ``holder`` if the lease is still at ``expected_version`` (None: create it)."""
    now = utcnow()
    if expected_version is None:
        try:
            with session.begin_nested():
                session.add(
                    LeaseRow(
                        name=name,
                        holder=holder,
                        version=1,
                        ttl_seconds=ttl,
                        acquired_at=now,
                        renewed_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True
    values: dict[str, object] = dict(
        holder=holder, version=expected_version + 1, ttl_seconds=ttl, renewed_at=now
    )
    if acquired:
        values["acquired_at"] = now
    result = session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name, LeaseRow.version == expected_version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
