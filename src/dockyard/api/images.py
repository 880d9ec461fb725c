"""Container images of environments: build (with streamed progress), list, render."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dockyard.api.state import ServerState, get_state
from dockyard.errors import DockyardError, RuntimeUnavailable
from dockyard.runtimes.images import list_images, render
from dockyard.spec import DESCRIPTOR, EnvironmentSpec
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]


Engine = Annotated[
    Literal["podman", "docker"] | None,
    Query(description="The container engine; default: the server's, else podman or docker."),
]


def _engine_runtime(state: ServerState, name: str | None) -> Any:
    from dockyard.runtimes.oci import OciRuntime

    if name is None:
        default = state.ctx.settings.runtime
        name = (
            default
            if default != "local"
            else next((e for e in ("podman", "docker") if shutil.which(e)), "podman")
        )
    if name == "local":
        raise RuntimeUnavailable(
            "the local runtime uses virtual environments, not images",
            hint="choose --runtime podman or docker",
        )
    runtime = state.ctx.runtime_for(name)
    assert isinstance(runtime, OciRuntime)
    return runtime


def _environment(state: ServerState, name: str, project: str) -> EnvironmentSpec:
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Environment", project, name))
        spec = DESCRIPTOR["Environment"].stored(row.spec, name)
        assert isinstance(spec, EnvironmentSpec)
        return spec


class ImageView(BaseModel):
    image: str
    environment: str | None = None
    hash: str | None = None
    model: str | None = None
    model_version: str | None = Field(default=None, alias="modelVersion")
    size: int | None = None
    created: str | int | None = None


class ImageList(BaseModel):
    runtime: str
    items: list[ImageView]


TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
}


@router.get("/images", response_model=ImageList)
def images(state: State, runtime: Engine = None) -> dict[str, Any]:
    engine = _engine_runtime(state, runtime)
    return {"runtime": engine.name, "items": list_images(engine.engine)}


@router.get("/environments/{name}/containerfile", response_class=PlainTextResponse, responses=TEXT)
def containerfile(name: str, state: State, project: str = "default", runtime: Engine = None) -> str:
    spec = _environment(state, name, project)
    engine = _engine_runtime(state, runtime)
    return render(name, spec, engine.base_for(spec))


@router.post("/environments/{name}/image", response_class=StreamingResponse, responses=TEXT)
async def build_image(
    name: str, state: State, project: str = "default", runtime: Engine = None
) -> StreamingResponse:
    """Build (or find) the environment's image; progress lines, then a JSON result line."""
    spec = await run_in_threadpool(_environment, state, name, project)
    engine = await run_in_threadpool(_engine_runtime, state, runtime)
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def progress(message: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, message)

    def work() -> dict[str, Any]:
        try:
            prepared = engine.prepare_environment(name, spec, progress)
            return {"image": prepared.location, "hash": prepared.hash}
        except DockyardError as exc:
            return {"error": exc.message, "hint": exc.hint}
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = loop.run_in_executor(None, work)

    async def stream() -> AsyncIterator[bytes]:
        while (line := await queue.get()) is not None:
            yield (line + "\n").encode()
        yield ("RESULT " + json.dumps(await task) + "\n").encode()

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")
