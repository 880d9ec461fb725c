"""The Runtime protocol: what every home (local processes, OCI, Kubernetes) must do.

It is kept small: node capacity, preparing an environment, and start/observe/stop/logs of a
workload by id. Optional powers are separate protocols a runtime may also implement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from dockyard.runtimes.steps import Step
from dockyard.spec import EnvironmentSpec


class RunState(StrEnum):
    """What a runtime reports about a workload (the control plane turns it into a Phase)."""

    NOT_FOUND = "NotFound"
    PENDING = "Pending"  # accepted by the runtime, waiting for a place (a cluster's scheduler)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LOST = "Lost"  # it was started but ended without a trace of its exit (killed shim)


@dataclass(frozen=True)
class NodeCapacity:
    cpu: float
    memory: int
    gpu: int
    gpu_note: str = ""
    gpu_models: tuple[str, ...] = ()
    known: bool = True  # False: not known yet (a cluster not listed): admit nothing…
    note: str = ""  # …and say why
    # a cluster: what each of its nodes can hold (a workload must fit on one of them)…
    nodes: tuple[NodeShape, ...] = ()
    # …what is free on each now (allocatable less the requests of the pods bound there), and
    # the workloads whose pods are bound (so counted in ``free``): the others Dockyard admitted
    # hold room that the cluster does not show yet
    free: tuple[NodeShape, ...] = ()
    bound: frozenset[str] = frozenset()
    grows: bool = False  # nodes may be added (a cluster autoscaler): too big only waits


@dataclass(frozen=True)
class NodeShape:
    """What one node of a cluster can hold in all (its allocatable)."""

    name: str
    cpu: float
    memory: int
    gpu: int = 0
    gpu_model: str | None = None


@dataclass(frozen=True)
class VolumeRef:
    """The Dockyard Volume a mount comes from, for runtimes whose volumes are not host
    directories (Kubernetes: a PersistentVolumeClaim per Volume, ``sub_path`` inside it)."""

    name: str
    sub_path: str = ""
    tier: str = "standard"
    size: int | None = None
    replicas: int = 1
    uid: str = ""  # the Volume's uid: its claim carries it, and no other Volume adopts it


@dataclass(frozen=True)
class Mount:
    """``source`` on the host appears at ``target`` in the workload; ``env_var`` names it."""

    source: Path
    target: str
    read_only: bool = False
    env_var: str | None = None
    volume: VolumeRef | None = None


@dataclass(frozen=True)
class PreparedEnvironment:
    """A built environment: for local processes a virtual environment directory."""

    hash: str
    location: str
    python: str
    env: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "location": self.location,
            "python": self.python,
            "env": self.env,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreparedEnvironment:
        return cls(data["hash"], data["location"], data["python"], dict(data.get("env", {})))


@dataclass(frozen=True)
class WorkloadRequest:
    id: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    environment: PreparedEnvironment | None = None
    code_dir: Path | None = None
    working_dir: str | None = None
    mounts: tuple[Mount, ...] = ()
    output_dir: Path | None = None
    # where $DOCKYARD_OUTPUT_DIR lives for runtimes whose volumes are not host directories (a
    # dataset preparation writes into its dataset's volume); the output also comes back to
    # ``output_dir`` on the server
    output_volume: VolumeRef | None = None
    cpu: float | None = None  # reserved share (soft)
    cpu_limit: float | None = None  # hard cap
    memory: int | None = None  # hard limit
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    extra_pythonpath: tuple[str, ...] = ()
    security: dict[str, Any] = field(default_factory=dict)  # spec.security (containers)
    # variable → SECRET/KEY: resolved when it starts into ``secret_env``, which a runtime gives
    # the workload only (never into a file others read, a command line or a log)
    secrets: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    # placement, assigned when the workload is admitted; each runtime translates it
    gpus: tuple[int, ...] = ()  # GPU indices on the node: CUDA_VISIBLE_DEVICES, --device
    gpu: int = 0  # how many GPUs (a cluster's nodes are counted, not indexed)
    port: int | None = None  # the port it serves on: $DOCKYARD_SERVE_PORT (and published by OCI)
    gpu_type: str | None = None  # resources.gpuType: a node selector on a cluster
    project: str = "default"
    priority: int = 0
    # a revision of a service on a runtime that runs its replicas as one object (Revisions)
    replicas: int = 1
    # preconditions the runtime carries out where the workload runs (PodSteps), with what
    # they read from the control plane (a dataset's manifest: name → its JSON)
    steps: tuple[Step, ...] = ()
    manifests: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class WorkloadState:
    id: str
    phase: RunState
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.phase in (RunState.SUCCEEDED, RunState.FAILED, RunState.LOST)


@runtime_checkable
class Runtime(Protocol):
    """Where workloads run. Blocking methods; the control loop calls them off the loop."""

    name: str
    # its workloads keep running without the control plane (a cluster's controllers keep
    # them): stopping the server leaves them, unless asked (``server stop --stop-workloads``)
    detached: bool

    def node(self) -> NodeCapacity: ...

    def prepare_environment(
        self, name: str, spec: EnvironmentSpec, progress: Callable[[str], None]
    ) -> PreparedEnvironment: ...

    def environment_ready(self, prepared: PreparedEnvironment) -> bool: ...

    def environment_key(self, spec: EnvironmentSpec) -> str:
        """The identity of what ``prepare_environment`` would build for ``spec``."""
        ...

    def start(self, request: WorkloadRequest) -> WorkloadState: ...

    def observe(self, workload_id: str) -> WorkloadState: ...

    def list_workloads(self) -> list[str]: ...

    def stop(self, workload_id: str, grace: float) -> None: ...

    def remove(self, workload_id: str) -> None: ...

    def log_path(self, workload_id: str) -> Path | None: ...

    def logs(self, workload_id: str, *, offset: int = 0) -> Iterator[bytes]: ...

    def set_listener(self, callback: Callable[[str], None]) -> None:
        """``callback(workload_id)`` when a workload changes state (may never be called)."""
        ...


@runtime_checkable
class ClusterVolumes(Protocol):
    """A runtime whose volumes are claims on a cluster (Kubernetes): their usage, measured in
    the cluster; deleting them; CSI snapshots of them."""

    def measure_volume(self, project: str, ref: VolumeRef) -> dict[str, Any]:
        """{claim: "namespace/name" or None, files, bytes} (None: could not be measured)."""
        ...

    def delete_volume(self, project: str, ref: VolumeRef) -> str: ...

    def volume_fate(self, project: str, ref: VolumeRef, purge: bool) -> str:
        """What deleting the Volume does to its claim (purge) or leaves (keep-data)."""
        ...

    def snapshot_volume(self, project: str, ref: VolumeRef, snapshot_id: str) -> dict[str, Any]: ...

    def volume_snapshots(self, project: str, name: str) -> list[dict[str, Any]]: ...

    def volume_host_path(self, project: str, ref: VolumeRef) -> Path | None: ...

    def restore_volume(
        self, project: str, ref: VolumeRef, source: str, snapshot_id: str
    ) -> dict[str, Any]: ...


@runtime_checkable
class Revisions(Protocol):
    """Optional power: a service's replicas of one version run as one object that the runtime
    scales and rolls (a Deployment), instead of one workload per replica."""

    def scale(self, workload_id: str, replicas: int) -> None: ...


@runtime_checkable
class PodSteps(Protocol):
    """Optional power: some preconditions run where the workload runs (a cluster: init
    containers on the claim), not on the control plane's machine."""

    def takes(self, step: Step) -> bool:
        """Will ``start`` carry ``step`` out itself (given in ``WorkloadRequest.steps``)?"""
        ...


@runtime_checkable
class ImageBuilder(Protocol):
    """Optional power: environments as OCI images built on this machine (Podman, Docker), a
    model server on them, pushed to a registry; what a cluster's runtime builds with."""

    def prepare_environment(
        self, name: str, spec: EnvironmentSpec, progress: Callable[[str], None]
    ) -> PreparedEnvironment: ...

    def prepare_serving(
        self,
        environment: PreparedEnvironment,
        model: str,
        version: int,
        model_dir: Path,
        progress: Callable[[str], None],
    ) -> PreparedEnvironment: ...

    def prepare_server(
        self, environment: PreparedEnvironment, progress: Callable[[str], None]
    ) -> PreparedEnvironment: ...

    def environment_key(self, spec: EnvironmentSpec) -> str: ...

    def environment_ready(self, prepared: PreparedEnvironment) -> bool: ...

    def push(self, image: str, registry: str, progress: Callable[[str], None]) -> str: ...

    def list_images(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class ClusterNodes(Protocol):
    """Optional power: a cluster's Node objects (what the scheduler extender scores)."""

    def node_objects(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class ServiceProxy(Protocol):
    """Optional power: a Service's address answers only inside the runtime's network (a
    cluster); the control plane reaches it through this client and path."""

    def service_proxy(self, project: str, service: str) -> tuple[httpx.Client, str]: ...


@runtime_checkable
class ServingImages(Protocol):
    """Optional power: package a model version with its environment as a serving image."""

    def prepare_serving(
        self,
        environment: PreparedEnvironment,
        model: str,
        version: int,
        model_dir: Path,
        progress: Callable[[str], None],
    ) -> PreparedEnvironment: ...
