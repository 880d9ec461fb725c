"""One consistent read of the store per reconcile pass, with each spec parsed once.

The loop reads every resource, workload and task row once per pass (a handful of queries,
however many resources there are) and a summary of the registry; reconcilers look things up
here instead of querying the store one resource at a time. Specs are parsed once per
generation and kept across passes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from dockyard.spec import DESCRIPTOR, SpecModel
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

    def done_for(self, token: str) -> bool:
        return self.token == token and self.state in (tasks_repo.SUCCEEDED, tasks_repo.FAILED)

    def running_for(self, token: str) -> bool:
        return self.token == token and self.state == tasks_repo.RUNNING


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

    def get(self, row: ResourceRow) -> SpecModel:
        key = (row.uid, row.generation)
        spec = self._specs.get(key)
        if spec is None:
            spec = DESCRIPTOR[row.kind].spec.model_validate(row.spec)
            self._specs[key] = spec
        return spec

    def keep_only(self, rows: list[ResourceRow]) -> None:
        live = {(r.uid, r.generation) for r in rows}
        for key in [k for k in self._specs if k not in live]:
            del self._specs[key]


@dataclass
class World:
    rows: dict[tuple[str, str, str], ResourceRow]
    workloads: dict[str, list[WorkloadRow]]
    tasks: dict[str, TaskView]
    models: dict[tuple[str, str], ModelSummary]
    at: datetime
    specs: SpecCache = field(default_factory=SpecCache)
    by_kind: dict[str, list[ResourceRow]] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)  # derived views, computed once a pass

    def get(self, kind: str, project: str, name: str) -> ResourceRow | None:
        row = self.rows.get((kind, project, name))
        return None if row is None or row.deleted_at is not None else row

    def of_kind(self, kind: str) -> list[ResourceRow]:
        return self.by_kind.get(kind, [])

    def owned(self, uid: str) -> list[WorkloadRow]:
        return self.workloads.get(uid, [])

    def spec(self, row: ResourceRow) -> Any:
        return self.specs.get(row)

    def task(self, key: str) -> TaskView | None:
        return self.tasks.get(key)

    def model(self, project: str, name: str) -> ModelSummary | None:
        return self.models.get((project, name))


def _task_view(
    row: TaskRow, at: datetime, in_flight: Callable[[str], bool], dead: Callable[[str | None], bool]
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


def load(
    session: Session,
    at: datetime,
    specs: SpecCache,
    in_flight: Callable[[str], bool],
    dead: Callable[[str | None], bool],
) -> World:
    rows = list(
        session.scalars(select(ResourceRow).order_by(ResourceRow.created_at, ResourceRow.name))
    )
    owned: dict[str, list[WorkloadRow]] = defaultdict(list)
    for w in session.scalars(
        select(WorkloadRow).order_by(
            WorkloadRow.generation, WorkloadRow.number, WorkloadRow.created_at
        )
    ):
        owned[w.owner_uid].append(w)
    tasks = {t.key: _task_view(t, at, in_flight, dead) for t in session.scalars(select(TaskRow))}
    by_kind: dict[str, list[ResourceRow]] = defaultdict(list)
    for r in rows:
        by_kind[r.kind].append(r)
    specs.keep_only(rows)
    return World(
        {(r.kind, r.project, r.name): r for r in rows},
        dict(owned),
        tasks,
        _models(session),
        at,
        specs,
        dict(by_kind),
    )
