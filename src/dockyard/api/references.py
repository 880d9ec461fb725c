"""Checks across resources, asked of the kind descriptors: what a spec names must exist when it
is applied, and what is still named by others must not be deleted."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from dockyard.data.code import CodeStore
from dockyard.errors import DockyardError
from dockyard.spec import DESCRIPTOR, AnyResource, Dataset, DatasetSpec, SpecModel
from dockyard.spec.common import Ref
from dockyard.spec.datasets import RESERVED
from dockyard.store import references as references_repo
from dockyard.store import resources as repo
from dockyard.store import secrets as secrets_repo
from dockyard.store.tables import ResourceRow

Key = tuple[str, str, str]  # kind, project, name
log = logging.getLogger("dockyard.api")


def _spec(row: ResourceRow) -> SpecModel | None:
    """A stored spec; None (and a warning) if it no longer validates: one such resource must
    not stop every apply, nor the server's start (its reconciler reports it)."""
    try:
        return DESCRIPTOR[row.kind].stored(row.spec, row.name)
    except DockyardError as exc:
        log.warning("%s", exc)
        return None


@dataclass
class Graph:
    """The resources an apply can point at: those stored (live) and those in the request."""

    stored: list[ResourceRow]
    batch: list[AnyResource]
    secrets: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # → key names
    names: set[Key] = field(init=False)

    def __post_init__(self) -> None:
        self.names = {(r.kind, r.project, r.name) for r in self.stored if r.deleted_at is None}
        self.names |= {(r.kind, r.project, r.name) for r in self.batch}

    @functools.cached_property
    def produced(self) -> set[Key]:
        """What jobs promise to create (a Model named by ``outputs.model``)."""
        specs = [(r.project, r.spec) for r in self.batch]
        replaced = {(r.kind, r.project, r.name) for r in self.batch}
        specs += [
            (row.project, _spec(row))
            for row in self.stored
            if row.deleted_at is None
            and (row.kind, row.project, row.name) not in replaced
            and DESCRIPTOR[row.kind].spec.produces is not SpecModel.produces
        ]
        return {
            (ref.kind, project, ref.name)
            for project, spec in specs
            if spec is not None
            for ref in spec.produces()
        }

    @functools.cached_property
    def datasets(self) -> dict[str, list[tuple[str, str, str]]]:
        """(name, volume, directory) of every dataset, per project."""
        out: dict[str, list[tuple[str, str, str]]] = {}
        replaced = {(r.project, r.name) for r in self.batch if isinstance(r, Dataset)}
        for r in self.batch:
            if isinstance(r, Dataset):
                out.setdefault(r.project, []).append((r.name, r.spec.volume, r.spec.target(r.name)))
        for row in self.stored:
            if row.kind == Dataset.KIND and row.deleted_at is None:
                if (row.project, row.name) in replaced:
                    continue
                spec = _spec(row)
                if not isinstance(spec, DatasetSpec):
                    continue
                out.setdefault(row.project, []).append(
                    (row.name, spec.volume, spec.target(row.name))
                )
        return out


def check(resource: AnyResource, graph: Graph, code: CodeStore) -> list[tuple[str, str]]:
    """Problems as (field path, message)."""
    problems = []
    project = resource.project
    for ref in DESCRIPTOR[resource.kind].references(resource.spec):
        if ref.kind == "Secret":
            problems += _secret_problem(ref, project, graph)
            continue
        key = (ref.kind, project, ref.name)
        if key in graph.names or (ref.producible and key in graph.produced):
            continue
        if ref.producible:
            message = (
                f"{ref.kind.lower()} '{ref.name}' not found: register it or apply a Job whose "
                "outputs.model names it"
            )
        else:
            message = (
                f"{ref.kind.lower()} '{ref.name}' not found: apply it in the same command or "
                f"first (see `dockyard get {DESCRIPTOR[ref.kind].plural}`)"
            )
        problems.append((ref.path, message))
    for path, snapshot in resource.spec.code_refs():
        if not code.exists(snapshot):
            problems.append(
                (
                    path,
                    f"code snapshot {snapshot} was not uploaded: use `dockyard apply`, which "
                    "uploads spec.code directories",
                )
            )
    if isinstance(resource, Dataset):
        problems += dataset_overlaps(resource, graph.datasets.get(project, []))
    return problems


def _secret_problem(ref: Ref, project: str, graph: Graph) -> list[tuple[str, str]]:
    keys = graph.secrets.get((project, ref.name))
    if keys is None:
        return [
            (
                ref.path,
                f"secret '{ref.name}' not found in project '{project}': create it first with "
                f"`dockyard secrets set {ref.name} {ref.key}=@FILE`",
            )
        ]
    if ref.key not in keys:
        return [
            (
                ref.path,
                f"secret '{ref.name}' has no key '{ref.key}' (it has: "
                f"{', '.join(sorted(keys)) or 'none'}); add it with "
                f"`dockyard secrets set {ref.name} {ref.key}=@FILE`",
            )
        ]
    return []


def secret_keys(session: Session) -> dict[tuple[str, str], set[str]]:
    """(project, name) → key names of every secret (the names only: nothing is opened)."""
    return {
        (row.project, row.name): set(row.keys.get("names", []))
        for row in secrets_repo.listing(session)
    }


def index(session: Session, row: ResourceRow, spec: SpecModel) -> None:
    """Record what ``row`` references (for the in-use checks of deletes)."""
    refs = DESCRIPTOR[row.kind].references(spec)
    references_repo.replace(session, row.uid, row.project, [(r.kind, r.name) for r in refs])


def index_all(session: Session) -> None:
    """Fill the index for a store that has none yet (made by an older version)."""
    if references_repo.indexed(session):
        return
    for row in repo.list_rows(session):
        spec = _spec(row) if row.deleted_at is None else None
        if spec is not None:
            index(session, row, spec)


def users(session: Session, project: str, kind: str, name: str) -> list[str]:
    """Live resources whose specs name ``kind``/``name`` and still use it (see ``released``)."""
    return [
        f"{other.kind.lower()} '{other.name}'"
        for other in references_repo.users(session, project, kind, name)
        if other.status.get("phase") not in DESCRIPTOR[other.kind].released
    ]


def secret_users(session: Session, project: str, name: str) -> list[str]:
    """Live resources whose workloads get a value of the secret ``name``."""
    return users(session, project, "Secret", name)


def _inside(a: str, b: str) -> bool:
    pa, pb = a.split("/"), b.split("/")
    return pa[: len(pb)] == pb or pb[: len(pa)] == pa


def dataset_overlaps(
    resource: Dataset, others: list[tuple[str, str, str]]
) -> list[tuple[str, str]]:
    """A dataset's directory must not hold or sit inside another's, nor the checkpoints.

    ``others`` lists (name, volume, directory) of the project's datasets.
    """
    target = resource.spec.target(resource.name)
    field_path = "spec.path" if resource.spec.path else "metadata.name"
    if target.split("/")[0] == RESERVED:
        return [
            (
                field_path,
                f"'{target}' is where jobs keep checkpoints on the volume; set "
                "spec.path to another directory",
            )
        ]
    for name, volume, directory in others:
        if name != resource.name and volume == resource.spec.volume and _inside(target, directory):
            return [
                (
                    field_path,
                    f"directory '{target}' overlaps dataset '{name}' ('{directory}') "
                    f"on volume '{volume}'; give each dataset its own spec.path",
                )
            ]
    return []
