"""One consistent read of the store per reconcile pass, with each spec parsed once.

The loop reads every resource, workload and task row once per pass (a handful of queries,
however many resources there are) and a summary of the registry; reconcilers look things up
here instead of querying the store one resource at a time. Rows are read as the store's text
and decoded only when they changed since the previous pass (``Snapshots``), which also tells
the loop whether anything changed at all; specs are parsed once per generation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Text, cast, func, select, tuple_
from sqlalchemy.orm import Session

from dockyard.control.changes import Changes, affected
from dockyard.control.records import ResourceRecord, WorkloadRecord
from dockyard.control.tasks import retry_after
from dockyard.errors import DockyardError
from dockyard.spec import DESCRIPTOR, SpecModel
from dockyard.spec.status import ACTIVE
from dockyard.store import tasks as tasks_repo
from dockyard.store.tables import (
    ModelAliasRow,
    ModelVersionRow,
    ResourceRow,
    TaskRow,
    WorkloadRow,
)


@dataclass(frozen=True)
class TaskView:
    """A task as the plans see it: ``running`` (and alive), ``succeeded``, ``failed``, or
    ``lost`` (its holder's lease ran out, or its holder is gone: run it again)."""

    name: str
    token: str
    state: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    progress: str = ""
    finished_at: datetime | None = None
    holder: str | None = None
    owner: str = ""  # the resource's uid
    attempts: int = 0

    def done_for(self, token: str) -> bool:
        return self.token == token and self.state in (tasks_repo.SUCCEEDED, tasks_repo.FAILED)

    def running_for(self, token: str) -> bool:
        return self.token == token and self.state == tasks_repo.RUNNING

    def retry_at(self) -> datetime | None:
        """When a failed task may run again (None: it did not fail)."""
        if self.state != tasks_repo.FAILED or self.finished_at is None:
            return None
        return self.finished_at + timedelta(seconds=retry_after(self.attempts))


@dataclass(frozen=True)
class ModelSummary:
    versions: frozenset[int]
    latest: int | None
    aliases: dict[str, int]
    metrics: dict[str, Any]


class SpecCache:
    """Typed specs by (uid, generation): validated once, not once per pass."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, int], SpecModel] = {}
        self._names: dict[tuple[str, int], list[tuple[str, str]]] = {}

    def get(self, row: ResourceRecord) -> SpecModel:
        key = (row.uid, row.generation)
        spec = self._specs.get(key)
        if spec is None:
            spec = DESCRIPTOR[row.kind].stored(row.spec, row.name)
            self._specs[key] = spec
        return spec

    def find(self, row: ResourceRecord) -> SpecModel | None:
        """The spec, or None if it no longer validates (for scans over other resources: the
        resource itself reports the problem when it is reconciled)."""
        try:
            return self.get(row)
        except DockyardError:
            return None

    def names(self, row: ResourceRecord) -> list[tuple[str, str]]:
        """(kind, name) of every resource its spec refers to or produces (none if the spec
        does not validate)."""
        key = (row.uid, row.generation)
        if key not in self._names:
            spec = self.find(row)
            refs = [] if spec is None else [*spec.references(), *spec.produces()]
            self._names[key] = [(ref.kind, ref.name) for ref in refs]
        return self._names[key]

    def keep_only(self, rows: list[ResourceRecord]) -> None:
        live = {(r.uid, r.generation) for r in rows}
        for cache in (self._specs, self._names):
            for key in [k for k in cache if k not in live]:
                del cache[key]


@dataclass
class World:
    rows: dict[tuple[str, str, str], ResourceRecord]
    workloads: dict[str, list[WorkloadRecord]]
    tasks: dict[str, TaskView]
    models: dict[tuple[str, str], ModelSummary]
    at: datetime
    specs: SpecCache = field(default_factory=SpecCache)
    by_kind: dict[str, list[ResourceRecord]] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)  # derived views, computed once a pass
    changed: bool = True  # anything differs from the previous pass's read
    changes: Changes | None = None  # what did (None: not known, plan everything)

    def get(self, kind: str, project: str, name: str) -> ResourceRecord | None:
        row = self.rows.get((kind, project, name))
        return None if row is None or row.deleted_at is not None else row

    def of_kind(self, kind: str) -> list[ResourceRecord]:
        return self.by_kind.get(kind, [])

    def owned(self, uid: str) -> list[WorkloadRecord]:
        return self.workloads.get(uid, [])

    def spec(self, row: ResourceRecord) -> Any:
        return self.specs.get(row)

    def spec_of_other(self, row: ResourceRecord) -> Any:
        """Another resource's spec, None if it no longer validates (see ``SpecCache.find``)."""
        return self.specs.find(row)

    def task(self, key: str) -> TaskView | None:
        return self.tasks.get(key)

    def busy(self, uid: str) -> bool:
        """Whether a task of the resource runs, or one of its workloads may."""
        if "busy" not in self.memo:
            owners = {t.owner for t in self.tasks.values() if t.state == tasks_repo.RUNNING}
            owners |= {u for u, ws in self.workloads.items() if any(w.phase in ACTIVE for w in ws)}
            self.memo["busy"] = owners
        return uid in self.memo["busy"]

    def model(self, project: str, name: str) -> ModelSummary | None:
        return self.models.get((project, name))


def _task_view(
    row: Any, at: datetime, in_flight: Callable[[str], bool], dead: Callable[[str | None], bool]
) -> TaskView:
    state = row.state
    if state == tasks_repo.RUNNING and not in_flight(row.key):
        expired = row.lease_expires is None or row.lease_expires < at
        if expired or dead(row.lease_owner):
            state = "lost"
    return TaskView(
        row.name,
        row.token,
        state,
        row.result or {},
        row.error,
        row.progress,
        row.finished_at,
        row.lease_owner,
        row.owner_uid,
        row.attempts,
    )


def _models(session: Session) -> dict[tuple[str, str], ModelSummary]:
    versions: dict[tuple[str, str], set[int]] = defaultdict(set)
    for project, model, version in session.execute(
        select(ModelVersionRow.project, ModelVersionRow.model, ModelVersionRow.version)
    ):
        versions[(project, model)].add(version)
    aliases: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for a in session.scalars(select(ModelAliasRow)):
        aliases[(a.project, a.model)][a.alias] = a.version
    latest = (
        select(ModelVersionRow.project, ModelVersionRow.model, func.max(ModelVersionRow.version))
        .group_by(ModelVersionRow.project, ModelVersionRow.model)
        .subquery()
    )
    metrics = {
        (p, m): dict(x or {})
        for p, m, x in session.execute(
            select(ModelVersionRow.project, ModelVersionRow.model, ModelVersionRow.metrics).where(
                tuple_(ModelVersionRow.project, ModelVersionRow.model, ModelVersionRow.version).in_(
                    select(latest)
                )
            )
        )
    }
    keys = set(versions) | set(aliases)
    return {
        k: ModelSummary(
            frozenset(versions.get(k, ())),
            max(versions[k]) if versions.get(k) else None,
            dict(aliases.get(k, {})),
            metrics.get(k, {}),
        )
        for k in keys
    }


_JSON = ("spec", "labels", "annotations", "status", "control", "request", "details")
_TIMES = ("created_at", "updated_at", "deleted_at", "started_at", "finished_at")


def _columns(table: Any) -> list[Any]:
    """The table's columns, JSON and times as the store's text: a row is compared as a plain
    tuple of what the database holds, and decoded only when it changed."""
    return [
        cast(c, Text).label(c.name) if c.name in _JSON or c.name in _TIMES else c
        for c in table.columns
    ]


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


_RESOURCE_COLUMNS = _columns(ResourceRow.__table__)
_WORKLOAD_COLUMNS = _columns(WorkloadRow.__table__)
_TASK_COLUMNS = [c for c in TaskRow.__table__.columns if c.name != "lease_expires"]


def _record(cls: Any, raw: Any) -> Any:
    values = raw._asdict()
    for name in _JSON:
        if name in values:
            text = values[name]
            values[name] = orjson.loads(text) if text else {}
    for name in _TIMES:
        if name in values:
            values[name] = _time(values[name])
    return cls(**values)


class Snapshots:
    """The rows of the previous pass, by their raw text: a pass decodes only what changed and
    knows whether anything did (``World.changed``)."""

    def __init__(self) -> None:
        self.specs = SpecCache()
        self._resources: dict[str, tuple[Any, ResourceRecord]] = {}
        self._workloads: dict[str, tuple[Any, WorkloadRecord]] = {}
        self._tasks: dict[str, tuple[Any, str]] = {}
        self._models: dict[tuple[str, str], ModelSummary] = {}

    def _read(
        self,
        session: Session,
        columns: list[Any],
        order: list[Any],
        cache: dict[str, Any],
        cls: Any,
        key: str,
    ) -> tuple[list[Any], dict[str, Any], list[Any]]:
        """The rows, the new cache, and the records that changed, came or went (for those
        that went: the record of the previous pass)."""
        touched: list[Any] = []
        fresh: dict[str, Any] = {}
        records = []
        for row in session.connection().execute(select(*columns).order_by(*order)):
            raw = tuple(row)
            ident = getattr(row, key)
            before = cache.get(ident)
            if before is not None and before[0] == raw:
                record = before[1]
            else:
                record = _record(cls, row)
                touched.append(record)
            fresh[ident] = (raw, record)
            records.append(record)
        touched += [record for ident, (_raw, record) in cache.items() if ident not in fresh]
        return records, fresh, touched

    def load(
        self,
        session: Session,
        at: datetime,
        in_flight: Callable[[str], bool],
        dead: Callable[[str | None], bool],
    ) -> World:
        before = {uid: record for uid, (_raw, record) in self._resources.items()}
        rows, self._resources, touched = self._read(
            session,
            _RESOURCE_COLUMNS,
            [ResourceRow.created_at, ResourceRow.name],
            self._resources,
            ResourceRecord,
            "uid",
        )
        workloads, self._workloads, touched_workloads = self._read(
            session,
            _WORKLOAD_COLUMNS,
            [WorkloadRow.generation, WorkloadRow.number, WorkloadRow.created_at],
            self._workloads,
            WorkloadRecord,
            "id",
        )
        owned: dict[str, list[WorkloadRecord]] = defaultdict(list)
        for w in workloads:
            owned[w.owner_uid].append(w)
        task_rows = list(session.execute(select(*_TASK_COLUMNS, TaskRow.lease_expires)))
        tasks_raw = {t.key: (tuple(t)[:-1], t.owner_uid) for t in task_rows}
        tasks = {t.key: _task_view(t, at, in_flight, dead) for t in task_rows}
        models = _models(session)
        changes = Changes(
            {r.uid for r in touched} | {w.owner_uid for w in touched_workloads},
            reshaped=[r for r in touched if _reshaped(before.get(r.uid), r)],
            gone=[r for r in touched if r.uid not in self._resources],
        )
        changes.reshaped += changes.gone
        for k in tasks_raw.keys() | self._tasks.keys():
            if tasks_raw.get(k) != self._tasks.get(k):
                changes.uids.add((tasks_raw.get(k) or self._tasks[k])[1])
        changes.models = {
            k for k in models.keys() | self._models.keys() if models.get(k) != self._models.get(k)
        }
        self._tasks, self._models = tasks_raw, models
        by_kind: dict[str, list[ResourceRecord]] = defaultdict(list)
        for r in rows:
            by_kind[r.kind].append(r)
        world = World(
            {(r.kind, r.project, r.name): r for r in rows},
            dict(owned),
            tasks,
            models,
            at,
            self.specs,
            dict(by_kind),
            changed=bool(changes),
            changes=changes,
        )
        # while the specs of what went are still known
        changes.affected = affected(world.rows, changes, self.specs.names)
        self.specs.keep_only(rows)
        return world


def _reshaped(before: ResourceRecord | None, after: ResourceRecord) -> bool:
    """Came, went, or its spec changed: more than its own status."""
    return (
        before is None
        or before.generation != after.generation
        or before.deleted_at != after.deleted_at
    )
