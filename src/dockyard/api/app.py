"""The control plane's FastAPI application and what it owns (store, runtime, control loop)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from dockyard import embedded
from dockyard.api import (
    apply,
    datasets,
    errors,
    images,
    jobs,
    models,
    proxy,
    references,
    resources,
    secrets,
    system,
    volumes,
)
from dockyard.api.guard import OPEN, Guard
from dockyard.api.state import ServerState
from dockyard.control.context import Context
from dockyard.control.identity import Identity
from dockyard.control.lanes import Lanes
from dockyard.control.leader import Leadership
from dockyard.control.loop import Controller
from dockyard.control.tasks import Tasks
from dockyard.data.artifacts import ArtifactStore
from dockyard.data.code import CodeStore
from dockyard.data.volumes import VolumeDirs
from dockyard.errors import RuntimeUnavailable, ServerUnavailable
from dockyard.placement.extender import extender_router
from dockyard.placement.nodes import CachedNodeLabels
from dockyard.runtimes.base import ClusterNodes
from dockyard.runtimes.registry import make_runtime
from dockyard.settings import Settings
from dockyard.store.db import Store
from dockyard.tokens import ensure_token
from dockyard.vault import Vault
from dockyard.version import __version__

log = logging.getLogger("dockyard.server")


def build_state(settings: Settings) -> ServerState:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.home.chmod(0o700)  # the store, runs, tokens and keys: this user's only
    ensure_token(settings)
    store = Store(settings.db_url)
    try:
        store.migrate()
    except SQLAlchemyError as exc:
        store.close()
        raise ServerUnavailable(
            f"the store {store.engine.url.render_as_string(hide_password=True)} cannot be "
            f"used: {str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0][:300]}",
            hint="check DOCKYARD_DATABASE_URL (and that the database server is up)",
        ) from exc
    with store.session() as session:
        references.index_all(session)
    artifacts = ArtifactStore(settings.artifacts_dir)
    identity = Identity(settings.host_id) if settings.host_id else Identity()
    lanes = Lanes()
    ctx = Context(
        settings=settings,
        store=store,
        runtime=make_runtime(settings, settings.runtime),
        artifacts=artifacts,
        code=CodeStore(artifacts, settings.home / "code"),
        volumes=VolumeDirs(settings.volumes_dir, settings.tier_dir),
        lanes=lanes,
        tasks=Tasks(store, lanes, identity.holder, settings.task_lease_seconds),
        identity=identity,
        vault=Vault(settings),
    )
    ctx.factory = lambda name: make_runtime(settings, name)
    leadership = Leadership(store, identity, settings.leader_lease_seconds)
    ctx.fenced = True  # the loop's writes land only while this replica holds the lease
    return ServerState(ctx, Controller(ctx, leadership))


def create_app(
    settings: Settings | None = None,
    on_ready: Callable[[], None] | None = None,
    stop_workloads: bool = True,
    state: ServerState | None = None,
) -> FastAPI:
    """The control plane. ``stop_workloads``: on shutdown the leader stops what runs on this
    machine (the embedded server; a cluster's workloads only when ``server stop
    --stop-workloads`` asked, see embedded.STOP_ALL); a replica of several (``server run``)
    leaves it to the next leader. ``state``: built already (``serve`` builds it first, so that
    what keeps a server from starting is one line, not a traceback)."""
    settings = settings or Settings()
    prebuilt = state

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = prebuilt if prebuilt is not None else await run_in_threadpool(build_state, settings)
        app.state.dockyard = built
        built.controller.start()
        if on_ready is not None:
            on_ready()
        log.info("control plane ready: home=%s runtime=%s", settings.home, built.ctx.runtime.name)
        try:
            yield
        finally:
            everything = embedded.stop_all_requested(settings)
            await run_in_threadpool(built.controller.stop, stop_workloads, everything)
            built.ctx.store.close()

    app = FastAPI(
        title="Dockyard",
        version=__version__,
        lifespan=lifespan,
        description="Run AI workloads together with their data.",
    )
    errors.install(app)
    modules = (system, apply, images, jobs, models, secrets, volumes, datasets, resources, proxy)
    for module in modules:
        app.include_router(module.router, responses=errors.RESPONSES)

    def cluster_nodes() -> list[dict[str, Any]]:
        """The Kubernetes runtime's watched nodes (the extender is for its cluster only)."""
        state: ServerState = app.state.dockyard
        ctx = state.ctx
        made = [ctx.runtime, *ctx.runtimes.values()]  # never one made for an extender call
        runtime = next((r for r in made if isinstance(r, ClusterNodes)), None)
        if runtime is None:
            raise RuntimeUnavailable(
                "this control plane runs nothing on Kubernetes: no nodes to place on",
                hint="serve the extender from a control plane with DOCKYARD_RUNTIME=kubernetes",
            )
        return list(runtime.node_objects())

    nodes = CachedNodeLabels(cluster_nodes, ttl=2.0)
    # no token on these paths: their bodies are bounded by the same setting as the API's
    router = extender_router(nodes, max_body_bytes=settings.max_request_bytes)
    app.include_router(router, responses=errors.RESPONSES)
    app.add_middleware(Guard, settings=settings)
    app.openapi = lambda: _with_security(app)  # type: ignore[method-assign]
    return app


def _with_security(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, saying that every route but the health check needs the token."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "token": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"token": []}]
        for path in OPEN:
            for operation in schema["paths"].get(path, {}).values():
                operation["security"] = []
        app.openapi_schema = schema
    return app.openapi_schema
