"""Job-only routes: cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from dockyard.api import views
from dockyard.api.state import ServerState, get_state
from dockyard.store import events
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1/jobs")
State = Annotated[ServerState, Depends(get_state)]


@router.post("/{name}/cancel", response_model=views.ResourceView)
def cancel(name: str, state: State, project: str = "default") -> Response:
    """Stop the running attempt and start no more (for this generation)."""
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Job", project, name))
        repo.set_control(session, row, cancelledGeneration=row.generation)
        events.record(session, row, "CancelRequested", f"generation {row.generation}")
        view = views.resource(row)
    state.changed()
    return views.fast(view)
