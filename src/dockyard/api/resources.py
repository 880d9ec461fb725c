"""``/api/v1``: apply, and the same read/delete/events/logs routes for every kind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from dockyard.api import references, views
from dockyard.api.state import ServerState, get_state
from dockyard.errors import Conflict, InvalidRequest, InvalidSpec, NotFound
from dockyard.spec import AnyResource, Dataset, Job, kind_of
from dockyard.spec.loader import FieldError, raise_errors, validate_data
from dockyard.store import events
from dockyard.store import resources as repo
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import WorkloadRow

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]
Project = Annotated[str, Query(description="Project of the resource.")]


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    documents: list[dict[str, Any]] = Field(min_length=1)
    dry_run: bool = Field(default=False, alias="dryRun")


class ApplyResult(BaseModel):
    kind: str
    name: str
    project: str
    action: str
    generation: int


def _validate(documents: list[dict[str, Any]]) -> list[AnyResource]:
    resources: list[AnyResource] = []
    errors: list[FieldError] = []
    for i, doc in enumerate(documents):
        try:
            resources.append(validate_data(doc, source=f"document {i + 1}"))
        except InvalidSpec as exc:
            errors.extend(FieldError(**err) for err in exc.details["errors"])
    seen: dict[tuple[str, str, str], int] = {}
    for i, r in enumerate(resources):
        key = (r.kind, r.project, r.name)
        if key in seen:
            errors.append(
                FieldError(
                    f"document {i + 1}",
                    1,
                    "metadata.name",
                    f"duplicate {r.kind} '{r.name}' (also document {seen[key] + 1})",
                )
            )
        seen[key] = i
    raise_errors(errors)
    return resources


@router.post("/apply", response_model=list[ApplyResult])
def apply(body: ApplyRequest, state: State) -> list[ApplyResult]:
    """Record the desired state of one or more resources, all or nothing."""
    resources = _validate(body.documents)
    for attempt in range(5):  # concurrent applies of the same names: read again and retry
        try:
            return _apply(resources, body.dry_run, state)
        except (repo.StaleWrite, IntegrityError):
            if attempt == 4:
                raise Conflict(
                    "the same resources are being applied concurrently", hint="apply again"
                ) from None
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _apply(resources: list[AnyResource], dry_run: bool, state: ServerState) -> list[ApplyResult]:
    batch = {(r.kind, r.project, r.name) for r in resources}
    producers = {
        (r.project, r.spec.outputs.model.name)
        for r in resources
        if isinstance(r, Job) and r.spec.outputs.model is not None
    }
    results: list[ApplyResult] = []
    with state.ctx.store.session() as session:
        stored = repo.list_rows(session)
        live = {(r.kind, r.project, r.name) for r in stored if r.deleted_at is None}
        producers |= {
            (r.project, r.spec.get("outputs", {}).get("model", {}).get("name"))
            for r in stored
            if r.kind == "Job"
            and r.deleted_at is None
            and (r.spec.get("outputs") or {}).get("model")
        }
        datasets: dict[str, list[tuple[str, str, str]]] = {}
        batch_datasets = {(r.project, r.name) for r in resources if isinstance(r, Dataset)}
        for r in resources:
            if isinstance(r, Dataset):
                datasets.setdefault(r.project, []).append(
                    (r.name, r.spec.volume, r.spec.target(r.name))
                )
        for row in stored:
            if (
                row.kind == "Dataset"
                and row.deleted_at is None
                and (row.project, row.name) not in batch_datasets
            ):
                datasets.setdefault(row.project, []).append(
                    (row.name, row.spec["volume"], row.spec.get("path") or row.name)
                )
        errors: list[FieldError] = []
        for i, r in enumerate(resources):

            def exists(kind: str, name: str, project: str = r.project) -> bool:
                if kind == "ModelProducer":
                    return (project, name) in producers
                return (kind, project, name) in batch or (kind, project, name) in live

            for path, message in references.check(r, exists, state.ctx.code):
                errors.append(FieldError(f"document {i + 1}", 1, path, message))
            for path, message in references.dataset_overlaps(r, datasets.get(r.project, [])):
                errors.append(FieldError(f"document {i + 1}", 1, path, message))
        raise_errors(errors)
        for r in resources:
            row, action = repo.apply(session, r)
            results.append(
                ApplyResult(
                    kind=r.kind,
                    name=r.name,
                    project=r.project,
                    action=action,
                    generation=row.generation,
                )
            )
            if action != "unchanged":
                events.record(
                    session,
                    row,
                    "Applied" if action == "created" else "Updated",
                    f"generation {row.generation}",
                )
        if dry_run:
            session.rollback()
            return results
    state.controller.wake()
    return results


@router.get("/events")
def all_events(
    state: State, project: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 200
) -> dict[str, Any]:
    with state.ctx.store.session() as session:
        return {"items": [views.event(e) for e in events.recent(session, project, limit)]}


@router.get("/{plural}")
def list_resources(
    plural: str, state: State, project: str | None = None, selector: str | None = None
) -> dict[str, Any]:
    kind = kind_of(plural)
    labels = None
    if selector:
        pairs = [p.split("=", 1) for p in selector.split(",")]
        if any(len(p) != 2 or not p[0] for p in pairs):
            raise InvalidRequest(f"bad selector {selector!r}", hint="use key=value[,key=value]")
        labels = {k: v for k, v in pairs}
    with state.ctx.store.session() as session:
        rows = repo.list_rows(session, kind, project, labels)
        return {"items": [views.resource(r) for r in rows]}


@router.get("/{plural}/{name}")
def get_resource(
    plural: str, name: str, state: State, project: Project = "default"
) -> dict[str, Any]:
    key = repo.Key(kind_of(plural), project, name)
    with state.ctx.store.session() as session:
        return views.resource(repo.require(session, key))


@router.get("/{plural}/{name}/events")
def resource_events(
    plural: str, name: str, state: State, project: Project = "default"
) -> dict[str, Any]:
    key = repo.Key(kind_of(plural), project, name)
    with state.ctx.store.session() as session:
        row = repo.require(session, key)
        return {"items": [views.event(e) for e in events.for_resource(session, row.uid)]}


@router.get("/{plural}/{name}/workloads")
def resource_workloads(
    plural: str, name: str, state: State, project: Project = "default"
) -> dict[str, Any]:
    key = repo.Key(kind_of(plural), project, name)
    with state.ctx.store.session() as session:
        row = repo.require(session, key)
        return {"items": [views.workload(w) for w in workloads_repo.for_owner(session, row.uid)]}


@router.delete("/{plural}/{name}", status_code=202)
def delete_resource(
    plural: str,
    name: str,
    state: State,
    project: Project = "default",
    purge: bool = False,
    force: bool = False,
    keep_data: bool = Query(default=False, alias="keepData"),
) -> dict[str, Any]:
    key = repo.Key(kind_of(plural), project, name)
    with state.ctx.store.session() as session:
        row = repo.require(session, key)
        if row.kind in ("Volume", "Dataset", "Environment", "Model"):
            references.check_delete(session, row, force)
        if row.kind == "Volume" and not purge and not keep_data:
            files, size = state.ctx.volumes.usage(row.project, row.name)
            if files:
                raise Conflict(
                    f"volume '{name}' holds {files} file(s) ({size} bytes)",
                    hint="pass --purge to delete the data too, or --keep-data to keep it on disk",
                )
        repo.mark_deleted(session, row, {"purge": purge})
        events.record(session, row, "Deleting", "deletion requested")
        view = views.resource(row)
    state.controller.wake()
    return view


def _pick(workloads: list[WorkloadRow], attempt: int | None, generation: int) -> WorkloadRow:
    if not workloads:
        raise NotFound(
            "nothing has run yet, so there are no logs", hint="see why with `dockyard describe`"
        )
    if attempt is None:
        return workloads[-1]
    for w in workloads:
        if w.number == attempt and w.generation == generation:
            return w
    raise NotFound(
        f"there is no attempt {attempt}", hint=f"attempts: {sorted({w.number for w in workloads})}"
    )


@router.get("/{plural}/{name}/logs")
def logs(
    plural: str,
    name: str,
    state: State,
    project: Project = "default",
    attempt: int | None = None,
    follow: bool = False,
) -> StreamingResponse:
    """The log of the latest (or the given) attempt or replica; ``follow`` streams it."""
    key = repo.Key(kind_of(plural), project, name)
    with state.ctx.store.session() as session:
        row = repo.require(session, key)
        workload = _pick(workloads_repo.for_owner(session, row.uid), attempt, row.generation)
    runtime, store = state.ctx.runtime_for(workload.runtime), state.ctx.store

    def read(offset: int) -> bytes:
        return b"".join(runtime.logs(workload.id, offset=offset))

    def finished() -> bool:
        with store.session() as session:
            live = session.get(WorkloadRow, workload.id)
            return live is None or live.phase not in workloads_repo.ACTIVE_PHASES

    async def stream() -> AsyncIterator[bytes]:
        # async, so that many followers wait on the event loop, not in the thread pool
        offset = 0
        while True:
            chunk = await run_in_threadpool(read, offset)
            if chunk:
                offset += len(chunk)
                yield chunk
            if not follow:
                return
            if not chunk:
                if await run_in_threadpool(finished):
                    tail = await run_in_threadpool(read, offset)
                    if tail:
                        yield tail
                    return
                await asyncio.sleep(0.2)

    return StreamingResponse(
        stream(),
        media_type="text/plain; charset=utf-8",
        headers={"X-Dockyard-Workload": workload.id},
    )
