"""``POST /api/v1/apply``: record the desired state of many resources, all or nothing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api import references
from dockyard.api.state import ServerState, get_state
from dockyard.errors import Conflict, InvalidSpec
from dockyard.spec import AnyResource
from dockyard.spec.loader import FieldError, raise_errors, validate_data
from dockyard.store import events
from dockyard.store import resources as repo
from dockyard.store.retry import CONFLICTS, on_conflict

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    documents: list[dict[str, Any]] = Field(min_length=1)
    dry_run: bool = Field(default=False, alias="dryRun")


class ApplyResult(BaseModel):
    kind: str
    name: str
    project: str
    action: str = Field(description="created, configured or unchanged")
    generation: int


def _validate(documents: list[dict[str, Any]]) -> list[AnyResource]:
    resources: list[AnyResource] = []
    errors: list[FieldError] = []
    for i, doc in enumerate(documents):
        try:
            resources.append(validate_data(doc, source=f"document {i + 1}"))
        except InvalidSpec as exc:
            errors.extend(FieldError(**err) for err in exc.details["errors"])
    seen: dict[tuple[str, str, str], int] = {}
    for i, r in enumerate(resources):
        key = (r.kind, r.project, r.name)
        if key in seen:
            errors.append(
                FieldError(
                    f"document {i + 1}",
                    1,
                    "metadata.name",
                    f"duplicate {r.kind} '{r.name}' (also document {seen[key] + 1})",
                )
            )
        seen[key] = i
    raise_errors(errors)
    return resources


@router.post("/apply", response_model=list[ApplyResult])
def apply(body: ApplyRequest, state: State) -> list[ApplyResult]:
    """Record the desired state of one or more resources, all or nothing."""
    resources = _validate(body.documents)
    try:  # concurrent applies of the same names: read again and retry
        results: list[ApplyResult] = on_conflict()(_apply, resources, body.dry_run, state)
    except CONFLICTS:
        raise Conflict(
            "the same resources are being applied concurrently", hint="apply again"
        ) from None
    state.changed()
    return results


def _apply(resources: list[AnyResource], dry_run: bool, state: ServerState) -> list[ApplyResult]:
    results: list[ApplyResult] = []
    with state.ctx.store.session() as session:
        graph = references.Graph(
            repo.list_rows(session), resources, references.secret_keys(session)
        )
        errors = [
            FieldError(f"document {i + 1}", 1, path, message)
            for i, r in enumerate(resources)
            for path, message in references.check(r, graph, state.ctx.code)
        ]
        raise_errors(errors)
        for r in resources:
            row, action = repo.apply(session, r)
            if action != "unchanged":
                references.index(session, row, r.spec)
            results.append(
                ApplyResult(
                    kind=r.kind,
                    name=r.name,
                    project=r.project,
                    action=action,
                    generation=row.generation,
                )
            )
            if action != "unchanged":
                events.record(
                    session,
                    row,
                    "Applied" if action == "created" else "Updated",
                    f"generation {row.generation}",
                )
        if dry_run:
            session.rollback()
    return results
