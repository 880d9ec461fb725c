"""The same routes for every kind, made from its descriptor: list, get, events, delete, and for
kinds that run workloads, their workloads and logs. Each kind's routes answer its own status
model, so /openapi.json describes every kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from dockyard.api import references, views
from dockyard.api.state import ServerState, get_state
from dockyard.control.workloads import secret_values
from dockyard.errors import Conflict, DockyardError, InUse, InvalidRequest, NotFound
from dockyard.redact import Redactor
from dockyard.runtimes.base import ClusterVolumes, VolumeRef
from dockyard.spec import DESCRIPTOR, DESCRIPTORS, KindDescriptor
from dockyard.spec.common import NAME_RE
from dockyard.store import events
from dockyard.store import resources as repo
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import ResourceRow, WorkloadRow

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
MAX_DELETE = 10_000  # resources in one delete request
LOG_READ_BYTES = 1 << 20  # of a log read at once (a log is streamed in such pieces)
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


def _log_stream(
    state: ServerState, workload: WorkloadRow, project: str, follow: bool
) -> StreamingResponse:
    runtime, store = state.ctx.runtime_for(workload.runtime), state.ctx.store
    redactor = Redactor(secret_values(state.ctx, project, workload.details.get("secrets", {})))

    def read(offset: int) -> bytes:  # at most LOG_READ_BYTES at a time, however big the log
        chunks, size = [], 0
        for chunk in runtime.logs(workload.id, offset=offset):
            chunks.append(chunk)
            size += len(chunk)
            if size >= LOG_READ_BYTES:
                break
        return b"".join(chunks)

    def finished() -> bool:
        with store.session() as session:
            live = session.get(WorkloadRow, workload.id)
            return live is None or live.phase not in workloads_repo.ACTIVE_PHASES

    def empty() -> bytes:
        """What an attempt that left no log says, instead of nothing."""
        with store.session() as session:
            live = session.get(WorkloadRow, workload.id)
        if live is not None and live.phase in workloads_repo.ACTIVE_PHASES:
            return f"[dockyard: {workload.id} ({live.phase}) has printed nothing yet]\n".encode()
        phase = f"{live.phase} {live.reason}".strip() if live is not None else "gone"
        return (
            f"[dockyard: {workload.id} ({phase}) left no output: it printed nothing, or its "
            "log could not be kept (a node that runs no program, like kwok's)]\n"
        ).encode()

    async def stream() -> AsyncIterator[bytes]:
        # async, so that many followers wait on the event loop, not in the thread pool
        offset = 0
        while True:
            chunk = await run_in_threadpool(read, offset)
            if chunk:  # more may follow at once: read on before waiting
                offset += len(chunk)
                yield redactor.feed(chunk)
                continue
            if not follow:
                yield redactor.flush() or (await run_in_threadpool(empty) if not offset else b"")
                return
            if await run_in_threadpool(finished):
                while tail := await run_in_threadpool(read, offset):
                    offset += len(tail)
                    yield redactor.feed(tail)
                yield redactor.flush() or (await run_in_threadpool(empty) if not offset else b"")
                return
            if held := redactor.flush():  # quiet for now: what was held back
                yield held
            await asyncio.sleep(0.2)

    return StreamingResponse(
        stream(),
        media_type="text/plain; charset=utf-8",
        headers={"X-Dockyard-Workload": workload.id},
    )


class Deletion(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    purge: bool = Field(default=False, description="Delete the data too (volumes, datasets).")
    force: bool = Field(default=False, description="Even if other resources still use them.")
    keep_data: bool = Field(default=False, alias="keepData", description="Keep volume files.")


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["Volume", "Environment", "Dataset", "Model", "Job", "Service"]
    name: str = Field(pattern=NAME_RE.pattern, max_length=63)
    project: str = Field(default="default", pattern=NAME_RE.pattern, max_length=63)


class DeleteRequest(Deletion):
    items: list[Target] = Field(min_length=1, max_length=MAX_DELETE)


class Deleted(BaseModel):
    kind: str
    name: str
    project: str
    deleted: bool = Field(description="False: it did not exist (nothing to do).")
    note: str = Field(
        default="", description="What becomes of its data (a claim deleted or kept, …)."
    )


def _held(state: ServerState, row: ResourceRow) -> str:
    """What data ``row`` (a Volume, a Dataset) holds that a plain delete would leave behind,
    or "" when it provably holds none (a claim whose usage is unknown holds some)."""
    files, size = state.ctx.volumes.usage(row.project, row.name)
    if files:
        return f"holds {files} file(s) ({size} bytes)"
    claim = (row.status or {}).get("claim")
    if claim:
        known = (row.status or {}).get("files")
        if known is None:
            return f"has the claim {claim} on the cluster, whose contents were not measured"
        if known:
            return f"has the claim {claim} holding {known} file(s)"
    return ""


def _fate(state: ServerState, row: ResourceRow, options: Deletion) -> str:
    """What the deletion does with a Volume's claim on a cluster, in words."""
    runtime = state.ctx.runtime
    if row.kind != "Volume" or not isinstance(runtime, ClusterVolumes):
        return ""
    try:
        return runtime.volume_fate(row.project, VolumeRef(row.name, uid=row.uid), options.purge)
    except DockyardError as exc:  # the answer is a courtesy: the deletion goes on
        return f"(the claim could not be looked at: {exc.message})"


def delete_rows(
    state: ServerState, session: Session, keys: list[repo.Key], options: Deletion
) -> tuple[list[ResourceRow], dict[str, str]]:
    """Mark resources deleted, all or none: each must exist, be unused by anything that is
    not deleted with it (unless ``force``), and hold no data unless told what to do with it.
    Also says, per uid, what becomes of the data that is deleted or kept."""
    rows = [repo.require(session, key) for key in keys]
    going = {(r.kind, r.project, r.name) for r in rows}
    for row in rows:
        if not options.force:
            users = [
                u
                for u in references.users(session, row.project, row.kind, row.name)
                if u not in {f"{k.lower()} '{n}'" for k, p, n in going if p == row.project}
            ]
            if users:
                raise InUse(
                    f"{row.kind.lower()} '{row.name}' is in use by {', '.join(users)}",
                    hint="delete those first (or with it), or pass --force",
                    details={"users": users},
                )
        asked = options.purge or options.keep_data
        if DESCRIPTOR[row.kind].purge and not asked and (held := _held(state, row)):
            raise Conflict(
                f"{row.kind.lower()} '{row.name}' {held}",
                hint="pass --purge to delete the data too, or --keep-data to keep it",
            )
    notes = {row.uid: _fate(state, row, options) for row in rows}
    for row in rows:
        repo.mark_deleted(session, row, {"purge": options.purge})
        events.record(session, row, "Deleting", notes[row.uid] or "deletion requested")
    return rows, notes


@router.post("/delete", response_model=list[Deleted], status_code=202)
def delete_many(body: DeleteRequest, state: State) -> list[dict[str, Any]]:
    """Delete many resources in one request (what `dockyard delete -f FILE` sends): the ones
    that do not exist are skipped, the others are deleted together or not at all."""
    out: list[dict[str, Any]] = []
    with state.ctx.store.session() as session:
        keys = []
        for t in body.items:
            key = repo.Key(t.kind, t.project, t.name)
            exists = repo.get(session, key, include_deleted=True) is not None
            out.append({"kind": t.kind, "name": t.name, "project": t.project, "deleted": exists})
            if exists:
                keys.append(key)
        rows, notes = delete_rows(state, session, keys, body)
    by_key = {(r.kind, r.project, r.name): notes[r.uid] for r in rows}
    for item in out:
        item["note"] = by_key.get((item["kind"], item["project"], item["name"]), "")
    state.changed()
    return out


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
        options = Deletion(purge=purge, force=force, keep_data=keep_data)
        with state.ctx.store.session() as session:
            (row,), _notes = delete_rows(state, session, [repo.Key(kind, project, name)], options)
            resource = views.resource(row)
        state.changed()
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
        return _log_stream(state, workload, project, follow)

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
