"""The contract every kind's reconciler follows: observe (I/O), plan (pure), work (tasks)."""

from __future__ import annotations

from typing import Any, Protocol

from dockyard.control.plan import Plan, TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import Work
from dockyard.control.world import World


class Reconciler(Protocol):
    kind: str

    def observe(self, world: World, row: ResourceRecord, spec: Any) -> Any:
        """Everything ``plan`` needs, read from the world (and the disk, at most cheaply)."""
        ...

    def plan(self, spec: Any, observed: Any) -> Plan:
        """What should happen next: a pure function of the spec and the observation."""
        ...

    def work(self, row: ResourceRecord, spec: Any, task: TaskRequest) -> Work:
        """The body of a background task the plan asked for (runs in a lane)."""
        ...
