"""The server's shared objects, reachable from request handlers."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dockyard.control.context import Context
from dockyard.control.loop import Controller


@dataclass
class ServerState:
    ctx: Context
    controller: Controller


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.dockyard
    return state
