"""The label and annotation scheme of placement near the data (docs/placement.md).

A **node** says what it holds with one label per dataset version or volume replica::

    data.dockyard.dev/dataset.default.digits.sha256-3f3f3f3f3f3f3f3f3f3f-bcf7f6708420: "true"

The name part is readable (kind, project, name, version, cut to fit) and ends with 12 hex
digits of the SHA-256 of the exact (kind, project, name, version), so two things do not share
a label even when their readable part is cut (48 bits tell them apart). :func:`data_label`
builds it; every key is a valid Kubernetes label key (prefix a DNS subdomain, name part at
most 63 characters).

Where a node is comes from the usual labels: ``topology.kubernetes.io/region``,
``topology.kubernetes.io/zone`` and Dockyard's rack label ``topology.dockyard.dev/rack``
(Kubernetes has no standard one); "same node" is the node's name.

A **pod** says what it needs in the annotation ``dockyard.dev/data``: a JSON list of
``{"kind": "Dataset"|"Volume", "project": …, "name": …, "version": …, "required": false}``
(:func:`needs_annotation` writes it, :func:`needs_of` reads it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dockyard.errors import InvalidRequest
from dockyard.spec.common import Name

DATA_PREFIX = "data.dockyard.dev"
"""The prefix of every "this node holds …" label."""
HOLDS = "true"
"""The value of such a label (any other value means the node does not hold it)."""
NEEDS = "dockyard.dev/data"
"""The pod annotation listing what the pod needs (a JSON list of :class:`Need`)."""
REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
RACK = "topology.dockyard.dev/rack"
MAX_NEEDS = 32
"""Needs one pod may list."""
MAX_VERSION = 256
"""Characters of a version (a dataset's ``sha256:…``, a tag)."""
DIGEST_HEX = 12
"""Hex digits of SHA-256 that end every data label: 48 bits against collisions."""
MAX_NAME_PART = 63
LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UNSAFE = re.compile(r"[^a-z0-9.-]+")

DataKind = Literal["Dataset", "Volume"]


def data_label(project: str, kind: DataKind, name: str, version: str | None = None) -> str:
    """The node label that says "this node holds that dataset version / volume replica"."""
    exact = "\0".join((kind, project, name, version or ""))
    digest = hashlib.sha256(exact.encode()).hexdigest()[:DIGEST_HEX]
    readable = f"{kind}.{project}.{name}" + (f".{version}" if version else "")
    slug = _UNSAFE.sub("-", readable.lower())[: MAX_NAME_PART - DIGEST_HEX - 1].rstrip(".-_")
    return f"{DATA_PREFIX}/{slug}-{digest}"


def is_label_key(key: str) -> bool:
    """Whether ``key`` is a valid Kubernetes label key (``[prefix/]name``)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix)):
        return False
    return len(name) <= MAX_NAME_PART and bool(LABEL_NAME_RE.match(name))


class Need(BaseModel):
    """One dataset version or volume a pod reads; ``required``: only nodes that hold it will
    do (when any node holds it at all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DataKind
    project: Name = "default"
    name: Name
    version: Annotated[str, Field(min_length=1, max_length=MAX_VERSION)] | None = None
    required: bool = False

    @cached_property
    def label(self) -> str:
        """The node label that says a node holds it (:func:`data_label`)."""
        return data_label(self.project, self.kind, self.name, self.version)

    def describe(self) -> str:
        """``Dataset default/digits@sha256:…`` (for messages)."""
        at = f"@{self.version}" if self.version else ""
        return f"{self.kind} {self.project}/{self.name}{at}"


def node_labels(held: Iterable[Need]) -> dict[str, str]:
    """The labels a node carries for what it holds."""
    return {need.label: HOLDS for need in held}


def needs_annotation(needs: Iterable[Need]) -> dict[str, str]:
    """The pod annotation that lists ``needs`` (empty: no annotation)."""
    listed = [n.model_dump(exclude_defaults=True) for n in needs]
    if len(listed) > MAX_NEEDS:
        raise InvalidRequest(
            f"a pod may list at most {MAX_NEEDS} data needs, not {len(listed)}",
            hint="list the datasets and volumes it reads most",
        )
    # kind is a Literal without default: always there
    return {NEEDS: json.dumps(listed, separators=(",", ":"))} if listed else {}


_NEEDS_LIST = Annotated[list[Need], Field(max_length=MAX_NEEDS)]


class _Needs(BaseModel):
    needs: _NEEDS_LIST


def needs_of(annotations: Mapping[str, str] | None, pod: str = "the pod") -> list[Need]:
    """What a pod's annotations say it needs ([] without the annotation).

    Raises :class:`InvalidRequest` naming ``pod`` and what is wrong with the annotation.
    """
    text = (annotations or {}).get(NEEDS)
    if text is None:
        return []
    hint = (
        f'{NEEDS} must be a JSON list of {{"kind": "Dataset"|"Volume", "project", "name", '
        f'"version", "required"}} (at most {MAX_NEEDS})'
    )
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"the annotation {NEEDS} of {pod} is not JSON: {exc}", hint=hint
        ) from exc
    try:
        return _Needs.model_validate({"needs": value}).needs
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'value'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise InvalidRequest(
            f"the annotation {NEEDS} of {pod} is wrong: {problems}", hint=hint
        ) from exc
