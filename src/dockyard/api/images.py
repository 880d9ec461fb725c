"""Container images of environments: build (with streamed progress), list, render."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dockyard.api.errors import RESPONSES
from dockyard.api.state import ServerState, get_state
from dockyard.errors import DockyardError
from dockyard.runtimes.base import ImageBuilder
from dockyard.runtimes.images import base_image, render
from dockyard.runtimes.registry import image_engine
from dockyard.spec import DESCRIPTOR, EnvironmentSpec
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]


REGISTRY = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$"
Engine = Annotated[
    Literal["podman", "docker"] | None,
    Query(description="The container engine; default: the server's, else podman or docker."),
]


def _engine_runtime(state: ServerState, name: str | None) -> ImageBuilder:
    """The runtime that builds images with that engine; RuntimeUnavailable (503, documented on
    these routes) when this server's machine has no such engine."""
    runtime = state.ctx.runtime_for(image_engine(state.ctx.settings, name))
    assert isinstance(runtime, ImageBuilder)
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
# the routes that run the container engine: a server without one says so with a 503
NO_ENGINE: dict[int | str, dict[str, Any]] = {
    503: {
        **RESPONSES[503],
        "description": "This server's machine has no such container engine (code "
        "`runtime-unavailable`, the hint says what to install); the request is valid and "
        "succeeds once the engine is installed there, without a restart.",
    }
}


@router.get("/images", response_model=ImageList, responses=NO_ENGINE)
def images(state: State, runtime: Engine = None) -> dict[str, Any]:
    engine = _engine_runtime(state, runtime)
    return {"runtime": image_engine(state.ctx.settings, runtime), "items": engine.list_images()}


@router.get("/environments/{name}/containerfile", response_class=PlainTextResponse, responses=TEXT)
def containerfile(name: str, state: State, project: str = "default") -> str:
    """The Containerfile of an environment (the same for every engine): text, so it needs
    no engine on this machine."""
    spec = _environment(state, name, project)
    return render(name, spec, base_image(spec, state.ctx.settings.base_image))


@router.post(
    "/environments/{name}/image",
    response_class=StreamingResponse,
    responses={**TEXT, **NO_ENGINE},
)
async def build_image(
    name: str,
    state: State,
    project: str = "default",
    runtime: Engine = None,
    serving: Annotated[
        bool, Query(description="Also the model server on it (what `dockyard render` names).")
    ] = False,
    push: Annotated[
        str | None,
        Query(
            pattern=REGISTRY,
            max_length=253,
            description="A registry to push the image(s) to, e.g. registry.example.com/ml.",
        ),
    ] = None,
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
            result: dict[str, Any] = {"image": prepared.location, "hash": prepared.hash}
            built = [prepared.location]
            if serving:
                result["server"] = engine.prepare_server(prepared, progress).location
                built.append(result["server"])
            if push:
                result["pushed"] = [engine.push(image, push, progress) for image in built]
            return result
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
