"""Volumes: make sure the directory exists and report its usage (measured in the background).

Usage is measured again when a workload that mounts the volume ended since the last
measurement, every ``WHILE_USED`` while one runs, and at least every ``USAGE_EVERY``: an
idle volume costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control.context import Context
from dockyard.control.plan import Delete, Plan, TaskRequest
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.world import ResourceRecord, TaskView, World
from dockyard.spec import DESCRIPTOR, VolumeSpec
from dockyard.spec.status import ACTIVE, Phase, VolumeStatus

USAGE_EVERY = timedelta(hours=1)
WHILE_USED = timedelta(seconds=30)


@dataclass(frozen=True)
class Observed:
    generation: int
    path: Path
    status: VolumeStatus
    usage: TaskView | None = None
    deleting: bool = False
    purge: bool = False
    at: datetime | None = None
    used_until: datetime | None = None  # when the last workload mounting it ended
    in_use: bool = False  # a workload mounting it runs


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
    every = WHILE_USED if obs.in_use else USAGE_EVERY
    stale = (
        measured is None
        or obs.at is None
        or obs.at - measured > every
        or (obs.used_until is not None and obs.used_until > measured)
    )
    tasks = []
    if stale and (usage is None or not usage.running_for(token)):
        tasks.append(TaskRequest("usage", token))
    recheck = measured + every if measured is not None and not stale else None
    return Plan(status, tasks=tasks, recheck_at=recheck)


def use_of_volumes(world: World) -> dict[tuple[str, str], tuple[datetime | None, bool]]:
    """(project, volume) → (when a workload mounting it last ended, whether one runs)."""
    key = "volume-use"
    if key not in world.memo:
        by_uid = {r.uid: r for r in world.rows.values()}
        use: dict[tuple[str, str], tuple[datetime | None, bool]] = {}
        for uid, workloads in world.workloads.items():
            row = by_uid.get(uid)
            spec = world.spec_of_other(row) if row is not None and workloads else None
            if row is None or spec is None:
                continue
            active = any(w.phase in ACTIVE for w in workloads)
            ended = max((w.finished_at for w in workloads if w.finished_at), default=None)
            for ref in DESCRIPTOR[row.kind].references(spec):
                if ref.kind != "Volume":
                    continue
                before, running = use.get((row.project, ref.name), (None, False))
                latest = max(filter(None, [before, ended]), default=None)
                use[(row.project, ref.name)] = (latest, running or active)
        world.memo[key] = use
    result: dict[tuple[str, str], tuple[datetime | None, bool]] = world.memo[key]
    return result


class VolumeReconciler:
    kind = "Volume"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: VolumeSpec) -> Observed:
        used_until, in_use = use_of_volumes(world).get((row.project, row.name), (None, False))
        return Observed(
            row.generation,
            self.ctx.volumes.path(row.project, row.name),
            VolumeStatus.model_validate(row.status),
            world.task(f"{row.uid}:usage"),
            row.deleted_at is not None,
            bool(row.control.get("purge")),
            world.at,
            used_until,
            in_use,
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: VolumeSpec, task: TaskRequest) -> Work:
        volumes = self.ctx.volumes

        def usage(_handle: TaskHandle) -> dict[str, Any]:
            volumes.ensure(row.project, row.name)
            files, used = volumes.usage(row.project, row.name)
            return {"files": files, "bytes": used}

        return usage
