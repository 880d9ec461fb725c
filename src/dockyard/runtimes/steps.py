"""What a workload needs done before it starts: typed preconditions its plan names.

The control plane carries them out on its own machine for the runtimes whose workloads live
there (local processes, containers); a runtime whose workloads live elsewhere takes those it
can do where they run (Kubernetes: init containers on the claim, ``PodSteps``) and the rest
stay the control plane's. Paths are ``Within = (root, rel)``: a directory a workload may write
into and a path inside it, used without following links out of the root (``paths.Inside``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
