"""``/api/v1/secrets``: named values for workloads, encrypted at rest, never answered back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.state import ServerState, get_state
from dockyard.errors import InUse, NotFound
from dockyard.spec.common import NAME_RE
from dockyard.store import secrets as repo
from dockyard.store.tables import SecretRow

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]
Name = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=63)]
Project = Annotated[str, Query(pattern=NAME_RE.pattern, max_length=63)]
KEY = r"^[A-Za-z0-9._-]{1,253}$"
MAX_KEYS = 100
MAX_VALUE = 64 * 1024  # bytes of one value


class SecretValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[
        Annotated[str, Field(pattern=KEY)],
        Annotated[str, Field(max_length=MAX_VALUE)],
    ] = Field(min_length=1, max_length=MAX_KEYS, description="Key → value (UTF-8 text).")


class SecretView(BaseModel):
    """A secret as the API shows it: its key names, never its values."""

    name: str
    project: str
    keys: list[str]
    created_at: str | None = Field(alias="createdAt")
    updated_at: str | None = Field(alias="updatedAt")


class SecretList(BaseModel):
    items: list[SecretView]


class Reencrypted(BaseModel):
    reencrypted: int


def view(row: SecretRow) -> dict[str, Any]:
    from dockyard.api.views import ts

    return {
        "name": row.name,
        "project": row.project,
        "keys": list(row.keys.get("names", [])),
        "createdAt": ts(row.created_at),
        "updatedAt": ts(row.updated_at),
    }


@router.put("/secrets/{name}", response_model=SecretView)
def put_secret(
    name: Name, body: SecretValues, state: State, project: Project = "default"
) -> dict[str, Any]:
    """Create or replace a secret; its values are encrypted before they are stored."""
    sealed = state.ctx.vault.seal(body.data)
    with state.ctx.store.session() as session:
        row = repo.put(session, project, name, sealed, sorted(body.data))
        out = view(row)
    state.changed()
    return out


@router.get("/secrets", response_model=SecretList)
def list_secrets(
    state: State,
    project: Annotated[str | None, Query(pattern=NAME_RE.pattern, max_length=63)] = None,
) -> dict[str, Any]:
    with state.ctx.store.session() as session:
        return {"items": [view(r) for r in repo.listing(session, project)]}


@router.get("/secrets/{name}", response_model=SecretView)
def get_secret(name: Name, state: State, project: Project = "default") -> dict[str, Any]:
    with state.ctx.store.session() as session:
        return view(_require(session, project, name))


@router.delete("/secrets/{name}", response_model=SecretView)
def delete_secret(
    name: Name, state: State, project: Project = "default", force: bool = False
) -> dict[str, Any]:
    from dockyard.api.references import secret_users

    with state.ctx.store.session() as session:
        row = _require(session, project, name)
        users = secret_users(session, project, name)
        if users and not force:
            raise InUse(
                f"secret '{name}' is used by {', '.join(users)}",
                hint="delete those first, or pass --force",
                details={"users": users},
            )
        out = view(row)
        repo.remove(session, project, name)
    return out


@router.post("/secrets:reencrypt", response_model=Reencrypted)
def reencrypt(state: State) -> dict[str, int]:
    """Encrypt every secret again with the first key (after putting a new key first)."""
    count = 0
    with state.ctx.store.session() as session:
        for row in repo.listing(session):
            row.sealed = state.ctx.vault.reseal(row.sealed)
            count += 1
    return {"reencrypted": count}


def _require(session: Any, project: str, name: str) -> SecretRow:
    row = repo.get(session, project, name)
    if row is None:
        raise NotFound(
            f"secret '{name}' not found"
            + (f" in project '{project}'" if project != "default" else ""),
            hint="list them with `dockyard secrets list`",
        )
    return row
