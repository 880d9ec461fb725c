"""Kind descriptors: everything the layers need to know about a kind, said once.

A descriptor names a kind's document, spec and status models, the phases in which it is
done (``apply --wait`` and ``Client.wait`` stop there), whether it runs workloads, and where
its data lives. The API's reference checks, the environment reconciler, ``describe`` and
``wait`` ask the descriptor instead of switching on the kind. Adding a kind means one
descriptor here, one spec module and one reconciler (``dockyard.control``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dockyard.errors import InvalidRequest, StoredSpecInvalid
from dockyard.spec.common import Ref, Resource, SpecModel
from dockyard.spec.datasets import Dataset, DatasetSpec
from dockyard.spec.environments import Environment, EnvironmentSpec
from dockyard.spec.jobs import Job, JobSpec
from dockyard.spec.models import Model, ModelSpec
from dockyard.spec.services import Service, ServiceSpec
from dockyard.spec.status import (
    ENDED,
    DatasetStatus,
    EnvironmentStatus,
    JobStatus,
    ModelStatus,
    Phase,
    ServiceStatus,
    Status,
    VolumeStatus,
)
from dockyard.spec.volumes import Volume, VolumeSpec

AnyResource = Resource[Any]
SETTLED = frozenset({Phase.READY, Phase.FAILED})


@dataclass(frozen=True)
class KindDescriptor:
    kind: str
    plural: str
    resource: type[AnyResource]
    spec: type[SpecModel]
    status: type[Status]
    final: frozenset[str]  # phases in which it is done (until its spec changes)
    workloads: str | None = None  # what its workloads are called: "attempts", "replicas" …
    data: str = ""  # where its data lives
    purge: bool = False  # deleting it leaves data behind unless --purge
    released: frozenset[str] = frozenset()  # phases in which it no longer uses its references
    aliases: tuple[str, ...] = ()

    def references(self, spec: SpecModel) -> list[Ref]:
        return spec.references()

    def stored(self, data: dict[str, Any], name: str) -> SpecModel:
        """A spec read back from the store. One applied by an older version may break a rule
        added since (a tighter bound): that fails for this resource alone, with what to do."""
        try:
            return self.spec.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "spec"
            raise StoredSpecInvalid(
                f"the stored spec of {self.kind.lower()} '{name}' is no longer valid "
                f"(spec.{where}: {first['msg']}; {exc.error_count()} problem(s))",
                hint=f"fix it and apply it again, or delete it: dockyard delete {self.plural} "
                f"{name}",
            ) from None

    def runtimes(self, spec: SpecModel) -> list[str]:
        return spec.runtimes()


DESCRIPTORS: tuple[KindDescriptor, ...] = (
    KindDescriptor(
        "Volume",
        "volumes",
        Volume,
        VolumeSpec,
        VolumeStatus,
        SETTLED,
        data="a directory under DOCKYARD_HOME/volumes/PROJECT/NAME",
        purge=True,
        aliases=("vol", "vols"),
    ),
    KindDescriptor(
        "Environment",
        "environments",
        Environment,
        EnvironmentSpec,
        EnvironmentStatus,
        SETTLED,
        data="a cached virtual environment (local) or an image (containers), shared by hash",
        aliases=("env", "envs"),
    ),
    KindDescriptor(
        "Dataset",
        "datasets",
        Dataset,
        DatasetSpec,
        DatasetStatus,
        SETTLED,
        workloads="preparations",
        data="a directory on its volume, with a manifest under DOCKYARD_HOME/manifests",
        aliases=("ds",),
    ),
    KindDescriptor(
        "Model",
        "models",
        Model,
        ModelSpec,
        ModelStatus,
        frozenset({Phase.READY, Phase.PENDING, Phase.FAILED}),
        data="versions in the registry tables, files in the artifact store",
    ),
    KindDescriptor(
        "Job",
        "jobs",
        Job,
        JobSpec,
        JobStatus,
        ENDED,
        workloads="attempts",
        data="outputs under DOCKYARD_HOME/outputs, logs under DOCKYARD_HOME/runs",
        released=ENDED,
    ),
    KindDescriptor(
        "Service",
        "services",
        Service,
        ServiceSpec,
        ServiceStatus,
        SETTLED,
        workloads="replicas",
        data="none of its own (it serves a model version)",
        aliases=("svc",),
    ),
)

# Order matters: it is the order of reconciliation and of ``dockyard get all``.
DESCRIPTOR: dict[str, KindDescriptor] = {d.kind: d for d in DESCRIPTORS}
KINDS: dict[str, type[AnyResource]] = {d.kind: d.resource for d in DESCRIPTORS}
_SPELLINGS: dict[str, str] = {}
for _d in DESCRIPTORS:
    for spelling in (_d.kind, _d.kind.lower(), _d.plural, *_d.aliases):
        _SPELLINGS[spelling] = _d.kind


def kind_of(spelling: str) -> str:
    """``jobs``, ``job``, ``Job`` → ``Job``; a helpful error for anything else."""
    kind = _SPELLINGS.get(spelling) or _SPELLINGS.get(spelling.lower())
    if kind is None:
        close = difflib.get_close_matches(spelling.lower(), list(_SPELLINGS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InvalidRequest(
            f"unknown kind '{spelling[:64]}'",
            hint=f"{hint}kinds are: {', '.join(d.plural for d in DESCRIPTORS)}",
        )
    return kind


def plural_of(kind: str) -> str:
    return DESCRIPTOR[kind].plural
