"""Environments: build (or find in the cache) what workloads run in, for every runtime in use.

A local workload needs a virtual environment, a container workload an image; an Environment
is prepared for the server's default runtime and for every runtime that a resource of its
project names (its kind's descriptor says which). Each build is a task in that runtime's
lane; a ready environment is built again every ``RECHECK`` (cheap when cached: it finds
what exists, or rebuilds what disappeared behind Dockyard's back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dockyard.control.context import Context
from dockyard.control.plan import Delete, Plan, TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.world import TaskView, World
from dockyard.errors import DockyardError
from dockyard.spec import DESCRIPTOR, EnvironmentSpec
from dockyard.spec.status import EnvironmentStatus, Phase, PreparedInfo

RECHECK = timedelta(seconds=30)  # how often a ready environment is checked to still exist


def build_task(runtime: str) -> str:
    return f"build-{runtime}"


@dataclass(frozen=True)
class Observed:
    generation: int
    status: EnvironmentStatus  # of this generation (empty otherwise)
    runtimes: tuple[str, ...]  # where it is needed
    builds: dict[str, TaskView] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # runtime → why it cannot be
    default: str = "local"
    deleting: bool = False
    at: datetime | None = None


def plan(spec: EnvironmentSpec, obs: Observed) -> Plan:
    if obs.deleting:
        return Plan(EnvironmentStatus(phase=Phase.TERMINATING, reason="Deleting"), delete=Delete())
    token = f"g{obs.generation}"
    prepared = dict(obs.status.prepared)
    failed = dict(obs.status.failed)
    building: dict[str, str] = {}
    tasks: list[TaskRequest] = []
    recheck: datetime | None = None
    for runtime in obs.runtimes:
        if runtime in obs.unavailable:
            failed[runtime] = obs.unavailable[runtime]
            continue
        task = obs.builds.get(runtime)
        mine = task is not None and task.token == token
        if mine and task is not None and task.state == "succeeded":
            result = PreparedInfo.model_validate(task.result)
            before = prepared.get(runtime)
            if result.built or before is None or before.hash != result.hash:
                prepared[runtime] = result  # a recheck that found it keeps how it was built
            due = task.finished_at + RECHECK if task.finished_at is not None else None
            if obs.at is not None and due is not None and obs.at > due:
                tasks.append(TaskRequest(build_task(runtime), token, lane=f"runtime-{runtime}"))
            elif due is not None:
                recheck = min(filter(None, [recheck, due]))
        elif mine and task is not None and task.state == "failed":
            failed[runtime] = task.error
            prepared.pop(runtime, None)
        elif mine and task is not None and task.state == "running":
            if runtime not in prepared:
                building[runtime] = task.progress or "building"
        elif runtime in failed:
            continue  # fix the spec (a new generation) to try again
        else:  # never built for this generation, or its builder died
            tasks.append(TaskRequest(build_task(runtime), token, lane=f"runtime-{runtime}"))
            if runtime not in prepared:
                building[runtime] = "starting"
    status = EnvironmentStatus(
        observed_generation=obs.generation,
        prepared=prepared,
        failed=failed,
        hash=prepared[obs.default].hash if obs.default in prepared else None,
    )
    if failed:
        message = "; ".join(f"{n}: {m}" for n, m in sorted(failed.items()))
        status = status.but(phase=Phase.FAILED, reason="BuildFailed", message=message)
    elif building:
        message = "; ".join(f"{n}: {m}" for n, m in sorted(building.items()))
        status = status.but(phase=Phase.BUILDING, reason="Building", message=message)
    else:
        done = [
            f"{n} {f'built in {p.seconds:g}s' if p.built else 'cached'}"
            for n, p in sorted(prepared.items())
        ]
        message = f"{len(spec.packages)} package(s); " + ", ".join(done)
        status = status.but(phase=Phase.READY, reason="Built", message=message)
    return Plan(status, tasks=tasks, recheck_at=recheck)


def runtimes_named(world: World, project: str) -> set[str]:
    """Runtimes that the project's resources name (their kinds' descriptors say where)."""
    key = ("runtimes", project)
    if key not in world.memo:
        names: set[str] = set()
        for (kind, p, _), row in world.rows.items():
            spec = world.spec_of_other(row) if p == project and row.deleted_at is None else None
            if spec is not None:
                names.update(DESCRIPTOR[kind].runtimes(spec))
        world.memo[key] = names
    named: set[str] = world.memo[key]
    return named


class EnvironmentReconciler:
    kind = "Environment"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: EnvironmentSpec) -> Observed:
        current = row.status.get("observedGeneration") == row.generation
        status = EnvironmentStatus.model_validate(row.status if current else {})
        runtimes = sorted({self.ctx.runtime.name} | runtimes_named(world, row.project))
        unavailable: dict[str, str] = {}
        builds: dict[str, TaskView] = {}
        for name in runtimes:
            try:
                self.ctx.runtime_for(name)
            except DockyardError as exc:
                unavailable[name] = str(exc)
            task = world.task(f"{row.uid}:{build_task(name)}")
            if task is not None:
                builds[name] = task
        return Observed(
            row.generation,
            status,
            tuple(runtimes),
            builds,
            unavailable,
            self.ctx.runtime.name,
            row.deleted_at is not None,
            world.at,
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: EnvironmentSpec, task: TaskRequest) -> Work:
        runtime = self.ctx.runtime_for(task.name.removeprefix("build-"))
        name = row.name

        def build(handle: TaskHandle) -> dict[str, Any]:
            started = time.monotonic()
            built = False

            def progress(message: str) -> None:
                nonlocal built
                built = built or message != "cached"
                handle.progress(message)

            result = runtime.prepare_environment(name, spec, progress)
            seconds = round(time.monotonic() - started, 1)
            return {**result.as_dict(), "seconds": seconds, "built": built}

        return build
