"""Health, version, node capacity, and code uploads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from dockyard.api.state import ServerState, get_state
from dockyard.store import workloads as workloads_repo
from dockyard.version import __version__

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]


@router.get("/healthz")
def healthz(state: State) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "runtime": state.ctx.runtime.name,
        "home": str(state.ctx.settings.home),
        "controller": {"passes": state.controller.passes, "lastError": state.controller.last_error},
    }


@router.get("/node")
def node(state: State) -> dict[str, Any]:
    cap = state.ctx.runtime.node()
    with state.ctx.store.session() as session:
        active = workloads_repo.active(session)
    return {
        "runtime": state.ctx.runtime.name,
        "capacity": {
            "cpu": cap.cpu,
            "memory": cap.memory,
            "gpu": cap.gpu,
            "gpuModels": list(cap.gpu_models),
            "gpuNote": cap.gpu_note,
        },
        "allocated": {
            "cpu": sum(float(w.request.get("cpu", 0)) for w in active),
            "memory": sum(int(w.request.get("memory", 0)) for w in active),
            "gpu": sum(int(w.request.get("gpu", 0)) for w in active),
        },
        "workloads": len(active),
    }


@router.post("/code")
async def upload_code(request: Request, state: State) -> dict[str, str]:
    """Store a ``tar.gz`` of a code directory; answer the reference to put in ``spec.code``."""
    data = await request.body()
    return {"ref": await run_in_threadpool(state.ctx.code.put, data)}
