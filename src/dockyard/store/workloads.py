"""Workloads: job attempts, dataset preparations and service replicas, as recorded."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dockyard.store.tables import WorkloadRow

ACTIVE_PHASES = ("Starting", "Running")


def for_owner(session: Session, owner_uid: str) -> list[WorkloadRow]:
    return list(
        session.scalars(
            select(WorkloadRow)
            .where(WorkloadRow.owner_uid == owner_uid)
            .order_by(WorkloadRow.generation, WorkloadRow.number)
        )
    )


def active(session: Session) -> list[WorkloadRow]:
    return list(session.scalars(select(WorkloadRow).where(WorkloadRow.phase.in_(ACTIVE_PHASES))))


def remove_for_owner(session: Session, owner_uid: str) -> None:
    session.execute(delete(WorkloadRow).where(WorkloadRow.owner_uid == owner_uid))


def all_workloads(session: Session) -> list[WorkloadRow]:
    return list(
        session.scalars(
            select(WorkloadRow).order_by(
                WorkloadRow.generation, WorkloadRow.number, WorkloadRow.created_at
            )
        )
    )
