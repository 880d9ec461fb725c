"""Task rows: claim under a lease, renew, finish (only while holding the lease), forget."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockyard.store.tables import TaskRow, utcnow

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def all_tasks(session: Session) -> list[TaskRow]:
    return list(session.scalars(select(TaskRow)))


def claim(
    session: Session,
    key: str,
    owner_uid: str,
    name: str,
    token: str,
    holder: str,
    seconds: float,
    steal_from: str | None = None,
) -> bool:
    """Mark ``key`` running for ``holder``; False while another holder's lease is live.

    ``steal_from`` takes over a live lease of a holder known to be dead (same host).
    """
    now = utcnow()
    expires = now + timedelta(seconds=seconds)
    values: dict[str, Any] = dict(
        owner_uid=owner_uid,
        name=name,
        token=token,
        state=RUNNING,
        progress="",
        result={},
        error="",
        lease_owner=holder,
        lease_expires=expires,
        started_at=now,
        finished_at=None,
    )
    free = [
        TaskRow.state != RUNNING,
        TaskRow.lease_owner.is_(None),
        TaskRow.lease_owner == holder,
        TaskRow.lease_expires < now,
    ]
    if steal_from is not None:
        free.append(TaskRow.lease_owner == steal_from)
    result = session.execute(
        update(TaskRow)
        .where(TaskRow.key == key, or_(*free))
        .values(attempts=TaskRow.attempts + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0):
        return True
    if session.get(TaskRow, key) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(TaskRow(key=key, attempts=1, **values))
    except IntegrityError:  # another replica inserted it first
        return False
    return True


def renew(session: Session, keys: Iterable[str], holder: str, seconds: float) -> int:
    """Extend the leases ``holder`` still has among ``keys``; how many it had."""
    keys = list(keys)
    if not keys:
        return 0
    result = session.execute(
        update(TaskRow)
        .where(TaskRow.key.in_(keys), TaskRow.lease_owner == holder)
        .values(lease_expires=utcnow() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def progress(session: Session, key: str, holder: str, text: str) -> None:
    session.execute(
        update(TaskRow)
        .where(TaskRow.key == key, TaskRow.lease_owner == holder)
        .values(progress=text[:2000])
        .execution_options(synchronize_session=False)
    )


def finish(
    session: Session,
    key: str,
    holder: str,
    state: str,
    result: dict[str, Any] | None = None,
    error: str = "",
) -> bool:
    """Record the outcome and release the lease; False if ``holder`` lost the lease."""
    done = session.execute(
        update(TaskRow)
        .where(TaskRow.key == key, TaskRow.lease_owner == holder)
        .values(
            state=state,
            result=result or {},
            error=error[:8000],
            lease_owner=None,
            lease_expires=None,
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(done, "rowcount", 0))


def forget(session: Session, key: str, holder: str) -> bool:
    """Delete a task row this holder still leases (work whose outcome went elsewhere)."""
    done = session.execute(delete(TaskRow).where(TaskRow.key == key, TaskRow.lease_owner == holder))
    return bool(getattr(done, "rowcount", 0))


def remove_for_owner(session: Session, owner_uid: str, keep: str | None = None) -> None:
    """Delete a resource's task rows (but ``keep``, the finalizer that is doing it)."""
    stmt = delete(TaskRow).where(TaskRow.owner_uid == owner_uid)
    if keep is not None:
        stmt = stmt.where(TaskRow.key != keep)
    session.execute(stmt)
