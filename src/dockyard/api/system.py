"""Health (with who leads the control loop), node capacity, and code uploads."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dockyard.api.state import ServerState, get_state
from dockyard.store import workloads as workloads_repo
from dockyard.version import __version__

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]


class ControllerHealth(BaseModel):
    leader: bool = Field(description="Whether this replica runs the control loop now.")
    leader_identity: str | None = Field(
        alias="leaderIdentity", description="The replica holding the leader lease, as last seen."
    )
    passes: int
    last_error: str = Field(alias="lastError")
    pass_ms_p50: float | None = Field(alias="passMsP50")
    pass_ms_p99: float | None = Field(alias="passMsP99")


class Health(BaseModel):
    status: str
    version: str
    runtime: str
    home: str
    pid: int
    replica: str = Field(description="This control-plane process (host/pidns/pid/start/nonce).")
    controller: ControllerHealth


class Quantities(BaseModel):
    cpu: float
    memory: int
    gpu: int


class Capacity(Quantities):
    gpu_models: list[str] = Field(alias="gpuModels")
    gpu_note: str = Field(alias="gpuNote")


class Node(BaseModel):
    runtime: str
    capacity: Capacity
    allocated: Quantities
    workloads: int


class CodeRef(BaseModel):
    ref: str = Field(description="What to put in spec.code: sha256:…")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 2)


@router.get("/healthz", response_model=Health)
def healthz(state: State) -> dict[str, Any]:
    """Always answered by every replica, leader or not; needs no token."""
    controller = state.controller
    durations = list(controller.durations)
    leadership = controller.leadership
    return {
        "status": "ok",
        "version": __version__,
        "runtime": state.ctx.runtime.name,
        "home": str(state.ctx.settings.home),
        "pid": os.getpid(),
        "replica": state.ctx.holder,
        "controller": {
            "leader": controller.leading(),
            "leaderIdentity": leadership.current if leadership else state.ctx.holder,
            "passes": controller.passes,
            "lastError": controller.last_error,
            "passMsP50": _percentile(durations, 0.5),
            "passMsP99": _percentile(durations, 0.99),
        },
    }


@router.get("/node", response_model=Node)
def node(state: State) -> dict[str, Any]:
    """The node's capacity and what the running workloads reserve of it."""
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


@router.post(
    "/code",
    response_model=CodeRef,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/gzip", "application/octet-stream")
            },
        }
    },
)
async def upload_code(request: Request, state: State) -> dict[str, str]:
    """Store a ``tar.gz`` of a code directory; answer the reference to put in ``spec.code``."""
    data = await request.body()
    return {"ref": await run_in_threadpool(state.ctx.code.put, data)}
