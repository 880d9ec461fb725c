"""The same routes for every kind, made from its descriptor: list, get, events, delete, and for
kinds that run workloads, their workloads and logs. Each kind's routes answer its own status
model, so /openapi.json describes every kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dockyard.api import references, views
from dockyard.api.state import ServerState, get_state
from dockyard.errors import Conflict, InvalidRequest, NotFound
from dockyard.spec import DESCRIPTORS, KindDescriptor
from dockyard.spec.common import NAME_RE
from dockyard.store import events
from dockyard.store import resources as repo
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import WorkloadRow

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]
Name = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=63)]
Project = Annotated[
    str, Query(pattern=NAME_RE.pattern, max_length=63, description="Project of the resource.")
]
AnyProject = Annotated[
    str | None, Query(pattern=NAME_RE.pattern, max_length=63, description="Only this project.")
]
Selector = Annotated[
    str | None,
    Query(max_length=1000, description="Labels to match: key=value[,key=value]."),
]
TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
}


@router.get("/events", response_model=views.EventList)
def all_events(
    state: State,
    project: AnyProject = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> Response:
    """The newest events of every resource (of a project)."""
    with state.ctx.store.session() as session:
        items = [views.event(e) for e in events.recent(session, project, limit)]
        return views.fast({"items": items})


def _labels(selector: str | None) -> dict[str, str] | None:
    if not selector:
        return None
    pairs = [p.split("=", 1) for p in selector.split(",")]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise InvalidRequest(f"bad selector {selector[:200]!r}", hint="use key=value[,key=value]")
    return {k: v for k, v in pairs}


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


def _log_stream(state: ServerState, workload: WorkloadRow, follow: bool) -> StreamingResponse:
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


def _routes(d: KindDescriptor) -> None:
    kind, plural = d.kind, d.plural
    view, listing = views.models_of(d)

    def list_resources(state: State, project: AnyProject = None, selector: Selector = None) -> Any:
        labels = _labels(selector)
        with state.ctx.store.session() as session:
            body = views.resource_list(session.connection(), kind, project, labels)
        return Response(body, media_type="application/json")

    def get_resource(name: Name, state: State, project: Project = "default") -> Any:
        with state.ctx.store.session() as session:
            return views.fast(views.resource(repo.require(session, repo.Key(kind, project, name))))

    def resource_events(name: Name, state: State, project: Project = "default") -> Any:
        with state.ctx.store.session() as session:
            row = repo.require(session, repo.Key(kind, project, name))
            items = [views.event(e) for e in events.for_resource(session, row.uid)]
            return views.fast({"items": items})

    def delete_resource(
        name: Name,
        state: State,
        project: Project = "default",
        purge: bool = False,
        force: bool = False,
        keep_data: bool = Query(default=False, alias="keepData"),
    ) -> Any:
        with state.ctx.store.session() as session:
            row = repo.require(session, repo.Key(kind, project, name))
            references.check_delete(session, row, force)
            if d.purge and not purge and not keep_data:
                files, size = state.ctx.volumes.usage(row.project, row.name)
                if files:
                    raise Conflict(
                        f"{kind.lower()} '{name}' holds {files} file(s) ({size} bytes)",
                        hint="pass --purge to delete the data too, or --keep-data to keep it",
                    )
            repo.mark_deleted(session, row, {"purge": purge})
            events.record(session, row, "Deleting", "deletion requested")
            resource = views.resource(row)
        state.controller.wake()
        return views.fast(resource, 202)

    def resource_workloads(name: Name, state: State, project: Project = "default") -> Any:
        with state.ctx.store.session() as session:
            row = repo.require(session, repo.Key(kind, project, name))
            items = [views.workload(w) for w in workloads_repo.for_owner(session, row.uid)]
            return views.fast({"items": items})

    def logs(
        name: Name,
        state: State,
        project: Project = "default",
        attempt: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
        follow: bool = False,
    ) -> StreamingResponse:
        with state.ctx.store.session() as session:
            row = repo.require(session, repo.Key(kind, project, name))
            workload = _pick(workloads_repo.for_owner(session, row.uid), attempt, row.generation)
        return _log_stream(state, workload, follow)

    tags: list[str | Enum] = [plural]
    lower = kind.lower()

    def add(path: str, fn: Any, method: str, operation: str, summary: str, **kw: Any) -> None:
        router.add_api_route(
            f"/{plural}{path}",
            fn,
            methods=[method],
            tags=tags,
            operation_id=operation,
            summary=summary,
            **kw,
        )

    add("", list_resources, "GET", f"list_{plural}", f"List {plural}", response_model=listing)
    add("/{name}", get_resource, "GET", f"get_{lower}", f"One {kind}", response_model=view)
    summary = f"Delete a {kind} (what runs for it stops; data stays unless purge)"
    add("/{name}", delete_resource, "DELETE", f"delete_{lower}", summary, response_model=view,
        status_code=202)  # fmt: skip
    add("/{name}/events", resource_events, "GET", f"events_of_{lower}", f"Events of a {kind}",
        response_model=views.EventList)  # fmt: skip
    if d.workloads is None:
        return
    add("/{name}/workloads", resource_workloads, "GET", f"workloads_of_{lower}",
        f"The {d.workloads} of a {kind}", response_model=views.WorkloadList)  # fmt: skip
    summary = f"The log of its latest (or the given) {d.workloads[:-1]}; follow streams it"
    add("/{name}/logs", logs, "GET", f"logs_of_{lower}", summary,
        response_class=StreamingResponse, responses=TEXT)  # fmt: skip


for _descriptor in DESCRIPTORS:
    _routes(_descriptor)
