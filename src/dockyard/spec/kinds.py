"""The table of resource kinds: name, plural and class, and lookups by any spelling."""

from __future__ import annotations

import difflib
from typing import Any

from dockyard.errors import InvalidRequest
from dockyard.spec.common import Resource
from dockyard.spec.datasets import Dataset
from dockyard.spec.environments import Environment
from dockyard.spec.jobs import Job
from dockyard.spec.models import Model
from dockyard.spec.services import Service
from dockyard.spec.volumes import Volume

AnyResource = Resource[Any]

# Order matters: it is the order of reconciliation and of ``dockyard get all``.
KINDS: dict[str, type[AnyResource]] = {
    cls.KIND: cls for cls in (Volume, Environment, Dataset, Model, Job, Service)
}
BY_PLURAL: dict[str, type[AnyResource]] = {cls.PLURAL: cls for cls in KINDS.values()}
_SPELLINGS: dict[str, str] = {}
for _kind, _cls in KINDS.items():
    for spelling in (_kind, _kind.lower(), _cls.PLURAL, _cls.PLURAL.lower()):
        _SPELLINGS[spelling] = _kind
_SPELLINGS.update(
    {
        "env": "Environment",
        "envs": "Environment",
        "svc": "Service",
        "vol": "Volume",
        "vols": "Volume",
        "ds": "Dataset",
    }
)


def kind_of(spelling: str) -> str:
    """``jobs``, ``job``, ``Job`` → ``Job``; a helpful error for anything else."""
    kind = _SPELLINGS.get(spelling) or _SPELLINGS.get(spelling.lower())
    if kind is None:
        close = difflib.get_close_matches(spelling.lower(), list(_SPELLINGS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InvalidRequest(
            f"unknown kind '{spelling}'",
            hint=f"{hint}kinds are: {', '.join(cls.PLURAL for cls in KINDS.values())}",
        )
    return kind


def plural_of(kind: str) -> str:
    return KINDS[kind].PLURAL
