"""The server's shared objects, reachable from request handlers."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dockyard.control.context import Context
from dockyard.control.loop import Controller
from dockyard.store import leases


@dataclass
class ServerState:
    ctx: Context
    controller: Controller

    def changed(self) -> None:
        """Desired state changed: tell the loop, here and (through the store) on the leader."""
        with self.ctx.store.session() as session:
            leases.bump(session)
        self.controller.wake()


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.dockyard
    return state
