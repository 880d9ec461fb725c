"""Volumes: make sure the directory exists and report its usage (measured in the background)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control.context import Context
from dockyard.control.plan import Delete, Plan, TaskRequest
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.world import ResourceRecord, TaskView, World
from dockyard.spec import VolumeSpec
from dockyard.spec.status import Phase, VolumeStatus

USAGE_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class Observed:
    generation: int
    path: Path
    status: VolumeStatus
    usage: TaskView | None = None
    deleting: bool = False
    purge: bool = False
    at: datetime | None = None


def plan(spec: VolumeSpec, obs: Observed) -> Plan:
    if obs.deleting:
        return Plan(
            VolumeStatus(phase=Phase.TERMINATING, reason="Deleting"),
            delete=Delete(purge=((obs.path.parent, obs.path.name),) if obs.purge else ()),
        )
    status = obs.status.but(
        phase=Phase.READY,
        reason="",
        message="",
        path=str(obs.path),
        observed_generation=obs.generation,
    )
    token = f"g{obs.generation}"
    usage = obs.usage
    if usage is not None and usage.done_for(token) and usage.state == "succeeded":
        status = status.but(
            files=usage.result.get("files"),
            used_bytes=usage.result.get("bytes"),
            usage_at=usage.finished_at,
        )
    measured = status.usage_at if usage is not None and usage.token == token else None
    stale = measured is None or obs.at is None or obs.at - measured > USAGE_EVERY
    tasks = []
    if stale and (usage is None or not usage.running_for(token)):
        tasks.append(TaskRequest("usage", token))
    recheck = measured + USAGE_EVERY if measured is not None and not stale else None
    return Plan(status, tasks=tasks, recheck_at=recheck)


class VolumeReconciler:
    kind = "Volume"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: VolumeSpec) -> Observed:
        return Observed(
            row.generation,
            self.ctx.volumes.path(row.project, row.name),
            VolumeStatus.model_validate(row.status),
            world.task(f"{row.uid}:usage"),
            row.deleted_at is not None,
            bool(row.control.get("purge")),
            world.at,
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: VolumeSpec, task: TaskRequest) -> Work:
        volumes = self.ctx.volumes

        def usage(_handle: TaskHandle) -> dict[str, Any]:
            volumes.ensure(row.project, row.name)
            files, used = volumes.usage(row.project, row.name)
            return {"files": files, "bytes": used}

        return usage
