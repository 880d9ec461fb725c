"""Models: summarize the registry's versions and aliases into the resource's status."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.control.context import Context
from dockyard.control.plan import Delete, Plan, TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import Work
from dockyard.control.world import ModelSummary, World
from dockyard.spec import ModelSpec
from dockyard.spec.status import ModelStatus, Phase


@dataclass(frozen=True)
class Observed:
    generation: int
    summary: ModelSummary | None
    deleting: bool = False


def plan(spec: ModelSpec, obs: Observed) -> Plan:
    if obs.deleting:
        status = ModelStatus(phase=Phase.TERMINATING, reason="Deleting")
        return Plan(status, delete=Delete(registry_model=True))
    s = obs.summary
    count = len(s.versions) if s is not None else 0
    if s is None or not count:
        status = ModelStatus(
            phase=Phase.PENDING,
            reason="NoVersion",
            message="no version yet: a job with outputs.model registers one",
            observed_generation=obs.generation,
            aliases=s.aliases if s is not None else {},
        )
        return Plan(status)
    status = ModelStatus(
        phase=Phase.READY,
        message=f"{count} version(s)",
        observed_generation=obs.generation,
        versions=count,
        latest=s.latest,
        aliases=s.aliases,
        metrics=s.metrics,
    )
    return Plan(status)


class ModelReconciler:
    kind = "Model"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: ModelSpec) -> Observed:
        return Observed(
            row.generation, world.model(row.project, row.name), row.deleted_at is not None
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: ModelSpec, task: TaskRequest) -> Work:
        raise NotImplementedError(task.name)  # models plan no background work
