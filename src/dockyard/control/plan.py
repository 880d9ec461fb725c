"""The one shape every reconciler returns: a typed ``Plan`` that the loop's applier carries out.

A reconciler ``observe``s (reads the world, does I/O), then its ``plan(spec, observed)``
(pure: no I/O, no clock) says what should happen; the applier (``control/apply.py``)
writes the status and events, stops workloads, submits background tasks, finalizes a
deletion, and schedules and starts workloads. Plans are unit-tested without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dockyard.runtimes.base import WorkloadRequest
from dockyard.runtimes.steps import (
    FreshDir,
    MakeDirs,
    Materialize,
    PruneCheckpoints,
    RestoreVersion,
    Step,
    UnpackCode,
    VerifyDatasets,
    Within,
)

__all__ = [
    "Delete",
    "Event",
    "FreshDir",
    "MakeDirs",
    "Materialize",
    "Need",
    "Plan",
    "PruneCheckpoints",
    "RestoreVersion",
    "Run",
    "Start",
    "Step",
    "TaskRequest",
    "UnpackCode",
    "VerifyDatasets",
    "Within",
]
from dockyard.spec.status import Status


@dataclass(frozen=True)
class Run:
    """A workload (job attempt, preparation, replica) as the plans see it."""

    id: str
    number: int
    generation: int
    phase: str
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)  # url, port, ready, version, usage …


@dataclass(frozen=True)
class Need:
    """What a workload reserves on a node (cpu, memory, gpu) and its hard CPU cap."""

    cpu: float = 0.0
    memory: int = 0
    gpu: int = 0
    cpu_limit: float | None = None


# what a workload needs done before it starts (typed preconditions): ``runtimes/steps.py``,
# where the runtimes that carry some out themselves (a pod's init containers) read them too
@dataclass(frozen=True)
class Start:
    """A workload to schedule and start.

    ``request`` has no placement yet: the scheduler's GPUs and the port (``port`` > 0 is a
    fixed one, 0 any free one) are filled in when it is admitted. ``running`` is the
    resource's status once admitted; ``event`` its message.
    """

    workload_id: str
    role: str
    generation: int
    number: int
    runtime: str | None
    request: WorkloadRequest
    need: Need
    project: str = "default"
    priority: int = 0
    created_at: datetime | None = None
    steps: tuple[Step, ...] = ()
    port: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    running: Status | None = None
    event: str = ""
    count: int = 1  # replicas of ``need`` (a service revision on a runtime with Revisions)


@dataclass(frozen=True)
class TaskRequest:
    """Background work for the resource: ``name`` is its action, ``token`` its input.

    A task with the same name and token that already ran is not run again; a new token
    (a new generation, a new version) replaces it.
    """

    name: str
    token: str
    args: dict[str, Any] = field(default_factory=dict)
    lane: str = "default"
    steal_from: str | None = None  # a dead holder whose lease may be taken over


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class Delete:
    """Finalize a deletion: remove workloads, the listed data, and the rows."""

    purge: tuple[Within, ...] = ()
    registry_model: bool = False  # a Model: its versions and aliases too
    claim: bool = False  # a Volume on a cluster: its claim too (purge)


@dataclass
class Plan:
    status: Status
    starts: list[Start] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    tasks: list[TaskRequest] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete: Delete | None = None
    recheck_at: datetime | None = None
    # (workload id, replicas): a revision scaled in place (a runtime with Revisions)
    scales: list[tuple[str, int]] = field(default_factory=list)
