"""Registry routes: versions and aliases of a model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.state import ServerState, get_state
from dockyard.errors import InvalidRequest, NotFound
from dockyard.registry import models as registry
from dockyard.spec import ModelRef
from dockyard.store import model_versions as versions_repo
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1/models")
State = Annotated[ServerState, Depends(get_state)]


class AliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)


class FileInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    sha256: str
    size: int


class VersionView(BaseModel):
    model: str
    version: int
    flavor: str
    path: str
    aliases: list[str]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    signature: dict[str, Any]
    files: dict[str, FileInfo]
    created_at: str = Field(alias="createdAt")


class VersionList(BaseModel):
    items: list[VersionView]


class AliasView(BaseModel):
    model: str
    alias: str
    version: int | None = None
    deleted: bool = False


@router.get("/{name}/versions", response_model=VersionList)
def versions(name: str, state: State, project: str = "default") -> dict[str, Any]:
    with state.ctx.store.session() as session:
        repo.require(session, repo.Key("Model", project, name))
        aliases = versions_repo.aliases(session, project, name)
        return {
            "items": [
                registry.version_view(v, aliases)
                for v in versions_repo.versions(session, project, name)
            ]
        }


@router.get("/{name}/versions/{ref}", response_model=VersionView)
def version(name: str, ref: str, state: State, project: str = "default") -> dict[str, Any]:
    try:
        model_ref = ModelRef.parse(f"{name}@{ref}")
    except ValueError as exc:
        raise InvalidRequest(
            f"bad version or alias '{ref}'", hint="use a number (3) or an alias (production)"
        ) from exc
    with state.ctx.store.session() as session:
        if repo.get(session, repo.Key("Model", project, name)) is None:
            raise NotFound(f"model '{name}' not found", hint="list them: dockyard models list")
        row = registry.resolve(session, project, model_ref)
        return registry.version_view(row, versions_repo.aliases(session, project, name))


@router.get(
    "/{name}/versions/{ref}/files/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
def version_file(
    name: str, ref: str, path: str, state: State, project: str = "default"
) -> FileResponse:
    """One file of a model version, checked against its sha256 before it is sent."""
    view = version(name, ref, state, project)
    info = view["files"].get(path)
    if info is None:
        raise NotFound(
            f"model '{name}' version {view['version']} has no file '{path}'",
            hint=f"files: {', '.join(sorted(view['files']))}",
        )
    blob = state.ctx.artifacts.verified(info["sha256"])
    return FileResponse(
        blob, media_type="application/octet-stream", headers={"X-Dockyard-Sha256": info["sha256"]}
    )


@router.put("/{name}/aliases/{alias}", response_model=AliasView)
def set_alias(
    name: str, alias: str, body: AliasRequest, state: State, project: str = "default"
) -> dict[str, Any]:
    with state.ctx.store.session() as session:
        repo.require(session, repo.Key("Model", project, name))
        registry.set_alias(session, project, name, alias, body.version)
    state.changed()
    return {"model": name, "alias": alias, "version": body.version}


@router.delete("/{name}/aliases/{alias}", response_model=AliasView)
def delete_alias(name: str, alias: str, state: State, project: str = "default") -> dict[str, Any]:
    with state.ctx.store.session() as session:
        if alias == "latest" or not versions_repo.delete_alias(session, project, name, alias):
            raise NotFound(f"model '{name}' has no alias '{alias}' to remove")
    state.changed()
    return {"model": name, "alias": alias, "deleted": True}
