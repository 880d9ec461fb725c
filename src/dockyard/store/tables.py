"""SQLAlchemy 2 tables. Schema changes go through Alembic (``store/migrations``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ResourceRow(Base):
    """Desired state (``spec``) and observed state (``status``) of one resource."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("kind", "project", "name", name="uq_resource_name"),)

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    project: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    control: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # bumped by every status write: the loop writes only over the status it read
    status_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_uid", "uid", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    project: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkloadRow(Base):
    """Something a runtime runs for a resource: a job attempt, a preparation, a replica.

    The row is written *before* the runtime is asked to start it, with a deterministic id,
    so a crash between the two can never start it twice.
    """

    __tablename__ = "workloads"
    __table_args__ = (Index("ix_workloads_owner", "owner_uid", "generation", "number"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner_uid: Mapped[str] = mapped_column(String(32))
    owner_kind: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    runtime: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TaskRow(Base):
    """Background work for a resource, under a lease per task key; its outcome stays here.

    ``token`` says which input the task ran for (a generation, a version); a task is done
    for that input once ``state`` is ``succeeded`` or ``failed``. While ``running``, the
    holder renews ``lease_expires``; a result is written only by the holder of the lease.
    """

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_owner", "owner_uid"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner_uid: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LeaseRow(Base):
    """A named lease (the control loop's leader): who holds it, renewed by bumping version."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    ttl_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReferenceRow(Base):
    """One reference of a resource's spec to another (or to a secret): an index for the
    checks "is it in use?" without reading every spec."""

    __tablename__ = "references"
    __table_args__ = (Index("ix_references_target", "project", "kind", "name"),)

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)  # the referring resource
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    project: Mapped[str] = mapped_column(String(63))


class SecretRow(Base):
    """Named secret values of a project, encrypted (``dockyard/vault.py``); the key names are
    kept in the clear so that references can be checked without decrypting."""

    __tablename__ = "secrets"

    project: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    keys: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project", "model", "version", name="uq_model_version"),
        UniqueConstraint("source_key", name="uq_model_version_source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(63))
    model: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(255))
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"

    project: Mapped[str] = mapped_column(String(63), primary_key=True)
    model: Mapped[str] = mapped_column(String(63), primary_key=True)
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
