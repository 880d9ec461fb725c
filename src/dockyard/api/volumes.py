"""Volume-only routes: snapshots (take, list), an in-place restore, and a full backup."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.state import ServerState, get_state
from dockyard.control import home_backup
from dockyard.data.snapshots import volume_key
from dockyard.errors import Conflict, NotFound
from dockyard.runtimes.base import ClusterVolumes
from dockyard.spec.common import NAME_RE, SECRET_REF_RE
from dockyard.spec.volumes import S3_RE, SNAPSHOT_ID_RE
from dockyard.store import events
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]
Name = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=63)]
Project = Annotated[str, Query(pattern=NAME_RE.pattern, max_length=63)]


class SnapshotRequested(BaseModel):
    request: int = Field(description="Carried out when the volume's snapshotRequest reaches it.")


class SnapshotView(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    created: str
    files: int
    bytes: int
    new_bytes: int = Field(alias="newBytes")
    tags: list[str]
    unsettled: list[str]
    backed_up: bool = Field(alias="backedUp")


class SnapshotList(BaseModel):
    items: list[SnapshotView]


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    snapshot: str = Field(pattern=SNAPSHOT_ID_RE.pattern)


class RestoreRequested(BaseModel):
    request: int


class BackupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(pattern=S3_RE.pattern, max_length=600)
    passphrase: str | None = Field(
        default=None,
        pattern=SECRET_REF_RE.pattern,
        max_length=317,
        description="SECRET/KEY of the passphrase (of project 'default').",
    )


class BackupDone(BaseModel):
    model_config = ConfigDict(extra="allow")

    target: str
    volumes: list[str]
    chunks: int
    bytes: int
    seconds: float


@router.post("/volumes/{name}/snapshots", response_model=SnapshotRequested, status_code=202)
def snapshot(name: Name, state: State, project: Project = "default") -> dict[str, Any]:
    """Ask for a snapshot now; it is taken in the background (see the volume's status)."""
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Volume", project, name))
        if row.deleted_at is not None:
            raise Conflict(f"volume '{name}' is being deleted")
        asked = int(row.control.get("snapshot", 0)) + 1
        repo.set_control(session, row, snapshot=asked)
        events.record(session, row, "SnapshotRequested", f"request {asked}")
    state.changed()
    return {"request": asked}


@router.get("/volumes/{name}/snapshots", response_model=SnapshotList)
def list_snapshots(name: Name, state: State, project: Project = "default") -> dict[str, Any]:
    """The volume's snapshots in the store, oldest first."""
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Volume", project, name))
        backed = str(row.status.get("lastBackup") or "")
    runtime = state.ctx.runtime
    items = []
    if isinstance(runtime, ClusterVolumes):  # CSI VolumeSnapshots of the claim
        found = runtime.volume_snapshots(project, name)
        items += [s | {"backedUp": False} for s in found]
    store = state.ctx.snapshots
    for sid in store.ids(volume_key(project, name)):
        summary = store.summary(volume_key(project, name), sid)
        items.append(summary | {"backedUp": bool(backed) and sid <= backed})
    return {"items": sorted(items, key=lambda s: str(s["id"]))}


@router.post("/volumes/{name}/restore", response_model=RestoreRequested, status_code=202)
def restore(
    name: Name, body: RestoreRequest, state: State, project: Project = "default"
) -> dict[str, Any]:
    """Restore a snapshot in place, once no workload mounts the volume."""
    if isinstance(state.ctx.runtime, ClusterVolumes):
        raise Conflict(
            "an in-place restore of a volume on Kubernetes would replace its claim",
            hint=f"restore to a new volume: dockyard volumes restore {name} -s ID --to NEW",
        )
    if body.snapshot not in state.ctx.snapshots.ids(volume_key(project, name)):
        raise NotFound(
            f"volume '{name}' has no snapshot '{body.snapshot}'",
            hint=f"list them with: dockyard volumes snapshots {name}",
        )
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Volume", project, name))
        asked = int((row.control.get("restore") or {}).get("n", 0)) + 1
        repo.set_control(session, row, restore={"n": asked, "snapshot": body.snapshot})
        events.record(session, row, "RestoreRequested", f"{body.snapshot} in place")
    state.changed()
    return {"request": asked}


@router.post("/backup", response_model=BackupDone)
def backup(body: BackupRequest, state: State) -> dict[str, Any]:
    """Snapshot the control plane's store and every volume, and push them all to S3."""
    return home_backup.backup(state.ctx, body.target, body.passphrase)
