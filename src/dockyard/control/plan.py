"""The one shape every reconciler returns: a typed ``Plan`` that the loop's applier carries out.

A reconciler ``observe``s (reads the world, does I/O), then its ``plan(spec, observed)``
(pure: no I/O, no clock) says what should happen; the applier (``control/apply.py``)
writes the status and events, stops workloads, submits background tasks, finalizes a
deletion, and schedules and starts workloads. Plans are unit-tested without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard.runtimes.base import WorkloadRequest
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


# -- what a workload needs done before the runtime starts it (run in its start task) --------
# A directory a workload may write into, and a path inside it: the server creates, reads and
# deletes there without following links out of the root (``data/paths.py``).
Within = tuple[Path, str]


@dataclass(frozen=True)
class MakeDirs:
    """Directories inside volumes that the workload mounts (sub paths, checkpoints)."""

    paths: tuple[Within, ...]


@dataclass(frozen=True)
class FreshDir:
    """An empty directory (a dataset's staging directory)."""

    path: Within


@dataclass(frozen=True)
class UnpackCode:
    """The code snapshot ``ref`` becomes the workload's working directory."""

    ref: str


@dataclass(frozen=True)
class VerifyDatasets:
    """Mounted datasets must still match their manifests: (name, directory, manifest)."""

    datasets: tuple[tuple[str, Within, Path], ...]


@dataclass(frozen=True)
class Materialize:
    """A model version's files copied out of the artifact store (and verified)."""

    project: str
    model: str
    version: int


@dataclass(frozen=True)
class PruneCheckpoints:
    """A job's checkpoint directory before an attempt: what is not a complete checkpoint
    goes, the newest ``keep`` complete ones stay, and the newest is named to the workload
    (``$DOCKYARD_CHECKPOINT_LATEST``; ``data/checkpoints.py``)."""

    path: Within
    keep: int


@dataclass(frozen=True)
class RestoreVersion:
    """A pinned older version of a dataset (``name@vN``) restored from the snapshot store
    into ``path`` (every chunk checked), unless an earlier job left it there."""

    key: str
    snapshot: str
    path: Within


Step = (
    MakeDirs
    | FreshDir
    | UnpackCode
    | VerifyDatasets
    | Materialize
    | PruneCheckpoints
    | RestoreVersion
)


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
