"""Checks across resources: references that must exist, and deletes that must wait."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from dockyard.data.code import CodeStore
from dockyard.errors import InUse
from dockyard.spec import AnyResource, Dataset, Job, Service
from dockyard.spec.datasets import RESERVED
from dockyard.store import resources as repo
from dockyard.store.tables import ResourceRow

TERMINAL = ("Succeeded", "Failed", "Cancelled")
Exists = Callable[[str, str], bool]


def references(resource: AnyResource) -> list[tuple[str, str, str]]:
    """(path, kind, name) of every resource that ``resource`` points at."""
    refs: list[tuple[str, str, str]] = []
    spec: Any = resource.spec
    if isinstance(resource, Job | Dataset):
        workload = spec.prepare if isinstance(resource, Dataset) else spec
        prefix = "spec.prepare." if isinstance(resource, Dataset) else "spec."
        if isinstance(resource, Dataset):
            refs.append(("spec.volume", "Volume", spec.volume))
        if workload is not None and workload.environment:
            refs.append((prefix + "environment", "Environment", workload.environment))
    if isinstance(resource, Job):
        for i, v in enumerate(spec.volumes):
            refs.append((f"spec.volumes[{i}].name", "Volume", v.name))
        for i, d in enumerate(spec.datasets):
            refs.append((f"spec.datasets[{i}].name", "Dataset", d.name))
        if spec.checkpoint is not None:
            refs.append(("spec.checkpoint.volume", "Volume", spec.checkpoint.volume))
    if isinstance(resource, Service) and spec.environment:
        refs.append(("spec.environment", "Environment", spec.environment))
    return refs


def check(resource: AnyResource, exists: Exists, code: CodeStore) -> list[tuple[str, str]]:
    """Problems as (field path, message)."""
    problems = []
    for path, kind, name in references(resource):
        if not exists(kind, name):
            problems.append(
                (
                    path,
                    f"{kind.lower()} '{name}' not found: apply it in the same "
                    f"command or first (see `dockyard get {kind.lower()}s`)",
                )
            )
    for path, ref in code_refs(resource):
        if not code.exists(ref):
            problems.append(
                (
                    path,
                    f"code snapshot {ref} was not uploaded: use `dockyard apply`, "
                    "which uploads spec.code directories",
                )
            )
    if isinstance(resource, Service):
        model = resource.spec.model_ref().name
        if not exists("Model", model) and not exists("ModelProducer", model):
            problems.append(
                (
                    "spec.model",
                    f"model '{model}' not found: register it or apply a "
                    "Job whose outputs.model names it",
                )
            )
    return problems


def code_refs(resource: AnyResource) -> list[tuple[str, str]]:
    spec: Any = resource.spec
    out = []
    if isinstance(resource, Job) and spec.code:
        out.append(("spec.code", spec.code))
    if isinstance(resource, Dataset) and spec.prepare is not None and spec.prepare.code:
        out.append(("spec.prepare.code", spec.prepare.code))
    return out


def referrers(session: Session, row: ResourceRow) -> list[str]:
    """Live resources that use ``row`` (a volume, dataset or environment)."""
    users = []
    for other in repo.list_rows(session, project=row.project):
        if other.deleted_at is not None or other.uid == row.uid:
            continue
        if other.kind == "Job" and other.status.get("phase") in TERMINAL:
            continue
        spec = other.spec
        names: set[tuple[str, str]] = set()
        if other.kind in ("Job", "Service"):
            names |= {("Volume", v["name"]) for v in spec.get("volumes", [])}
            names |= {("Dataset", d["name"]) for d in spec.get("datasets", [])}
            if spec.get("checkpoint"):
                names.add(("Volume", spec["checkpoint"]["volume"]))
            if spec.get("environment"):
                names.add(("Environment", spec["environment"]))
        if other.kind == "Dataset":
            names.add(("Volume", spec["volume"]))
            if spec.get("prepare") and spec["prepare"].get("environment"):
                names.add(("Environment", spec["prepare"]["environment"]))
        if other.kind == "Service" and row.kind == "Model":
            names.add(("Model", spec["model"].split("@")[0]))
        if (row.kind, row.name) in names:
            users.append(f"{other.kind.lower()} '{other.name}'")
    return users


def check_delete(session: Session, row: ResourceRow, force: bool) -> None:
    users = referrers(session, row)
    if users and not force:
        raise InUse(
            f"{row.kind.lower()} '{row.name}' is in use by {', '.join(users)}",
            hint="delete those first, or pass --force",
            details={"users": users},
        )


def _inside(a: str, b: str) -> bool:
    pa, pb = a.split("/"), b.split("/")
    return pa[: len(pb)] == pb or pb[: len(pa)] == pa


def dataset_overlaps(
    resource: AnyResource, others: list[tuple[str, str, str]]
) -> list[tuple[str, str]]:
    """A dataset's directory must not hold or sit inside another's, nor the checkpoints.

    ``others`` lists (name, volume, directory) of the project's other datasets.
    """
    if not isinstance(resource, Dataset):
        return []
    target = resource.spec.target(resource.name)
    field = "spec.path" if resource.spec.path else "metadata.name"
    if target.split("/")[0] == RESERVED:
        return [
            (
                field,
                f"'{target}' is where jobs keep checkpoints on the volume; set "
                "spec.path to another directory",
            )
        ]
    for name, volume, directory in others:
        if name != resource.name and volume == resource.spec.volume and _inside(target, directory):
            return [
                (
                    field,
                    f"directory '{target}' overlaps dataset '{name}' ('{directory}') "
                    f"on volume '{volume}'; give each dataset its own spec.path",
                )
            ]
    return []
