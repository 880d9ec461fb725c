"""Dataset-only routes: the difference between two versions (of one dataset or two)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.state import ServerState, get_state
from dockyard.data.snapshots import Entry, dataset_key
from dockyard.errors import InvalidRequest, NotFound
from dockyard.spec.common import NAME_RE
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]
Project = Annotated[str, Query(pattern=NAME_RE.pattern, max_length=63)]
REF = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(@v[1-9][0-9]{0,6})?$"
MAX_LISTED = 1000
"""Paths listed per kind of change (the counts are always complete)."""


class Change(BaseModel):
    path: str
    bytes: int = Field(description="Its size in B (the newer size when changed).")


class DatasetDiff(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    a: str
    b: str
    added: list[Change]
    removed: list[Change]
    changed: list[Change]
    counts: dict[str, int] = Field(description="added, removed, changed, unchanged.")


def _files(state: ServerState, project: str, ref: str) -> tuple[str, dict[str, Entry]]:
    name, _, version = ref.partition("@")
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Dataset", project, name))
        status = dict(row.status)
    versions = status.get("versions") or []
    number = int(version[1:]) if version else status.get("version")
    found = next((v for v in versions if v.get("version") == number), None)
    if found is None or not found.get("snapshot"):
        known = ", ".join(f"v{v['version']}" for v in versions) or "none yet"
        raise NotFound(f"dataset '{name}' has no version {number} (its versions: {known})")
    snap = state.ctx.snapshots.load(dataset_key(project, name), found["snapshot"])
    return f"{name}@v{number}", {e.path: e for e in snap.entries if e.type == "f"}


@router.get("/datasets:diff", response_model=DatasetDiff)
def diff(
    state: State,
    a: Annotated[str, Query(max_length=80)],
    b: Annotated[str, Query(max_length=80)],
    project: Project = "default",
) -> dict[str, Any]:
    """What changed from ``a`` to ``b`` (``NAME`` for the current version, ``NAME@vN``)."""
    for ref in (a, b):
        if not re.match(REF, ref):
            raise InvalidRequest(f"expected NAME or NAME@vN, got {ref[:80]!r}")
    a_ref, old = _files(state, project, a)
    b_ref, new = _files(state, project, b)
    added = [Change(path=p, bytes=new[p].size) for p in sorted(new.keys() - old.keys())]
    removed = [Change(path=p, bytes=old[p].size) for p in sorted(old.keys() - new.keys())]
    both = sorted(old.keys() & new.keys())
    changed = [Change(path=p, bytes=new[p].size) for p in both if old[p].chunks != new[p].chunks]
    counts = {
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "unchanged": len(both) - len(changed),
    }
    return {
        "a": a_ref,
        "b": b_ref,
        "added": added[:MAX_LISTED],
        "removed": removed[:MAX_LISTED],
        "changed": changed[:MAX_LISTED],
        "counts": counts,
    }
