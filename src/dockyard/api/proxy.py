"""A Service's model server through the control plane: ``/api/v1/services/NAME/proxy/PATH``.

The address of a Service on a cluster (its Kubernetes Service) answers inside the cluster
only; the control plane reaches it through the API server's service proxy (a runtime with
``ServiceProxy``), and a Service elsewhere at its own URL. The route needs the admin token like
every other; the model server's own token (``spec.auth``), if the caller has one, travels as
``X-Dockyard-Serving-Token`` and reaches the model server as its ``Authorization``. Only the
model server's protocol paths pass (``v2/…``, ``v1/…``), with JSON bodies (the guard's rule).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Header, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from dockyard.api.errors import RESPONSES
from dockyard.api.state import ServerState, get_state
from dockyard.errors import InvalidRequest, ServerUnavailable
from dockyard.runtimes.base import ServiceProxy
from dockyard.spec import Service
from dockyard.store import resources as repo

router = APIRouter(prefix="/api/v1")
State = Annotated[ServerState, Depends(get_state)]
SAFE = re.compile(r"^v[12]/[A-Za-z0-9._:@/-]*$")
PASSED = ("content-type",)  # what of the model server's answer headers comes back
TIMEOUT = 60.0


def _target(state: ServerState, name: str, project: str) -> tuple[httpx.Client | None, str]:
    """(a client of the cluster, the service's path on it) or (None, the service's URL)."""
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key(Service.KIND, project, name))
        status, runtime_name = dict(row.status or {}), (row.spec or {}).get("runtime")
    if not status.get("url"):
        raise ServerUnavailable(
            f"service '{name}' has no ready replica ({status.get('phase', 'Pending')}: "
            f"{status.get('message', '')})",
            hint=f"watch it with `dockyard describe service {name}`",
        )
    runtime = state.ctx.runtime_for(runtime_name)
    if isinstance(runtime, ServiceProxy):
        return runtime.service_proxy(project, name)
    return None, str(status["url"])


def _forward(
    state: ServerState,
    name: str,
    project: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> httpx.Response:
    client, base = _target(state, name, project)
    url = f"{base.rstrip('/')}/{path}"
    try:
        if client is not None:
            return client.request(method, url, content=body, headers=headers, timeout=TIMEOUT)
        with httpx.Client(trust_env=False, timeout=TIMEOUT) as direct:
            return direct.request(method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ServerUnavailable(f"service '{name}' did not answer: {exc}") from exc


async def proxy(
    name: Annotated[str, Path(max_length=63)],
    path: Annotated[str, Path(max_length=1000)],
    request: Request,
    state: State,
    project: str = "default",
    serving_token: Annotated[
        str | None, Header(alias="X-Dockyard-Serving-Token", max_length=4096)
    ] = None,
) -> Response:
    """Send the request on to the Service's model server and answer what it answers."""
    if not SAFE.match(path) or ".." in path.split("/"):
        raise InvalidRequest(
            f"not a model server path: {path[:200]!r}", hint="e.g. v2/models/NAME/infer"
        )
    headers = {"content-type": request.headers.get("content-type", "application/json")}
    if serving_token:
        headers["authorization"] = f"Bearer {serving_token}"
    body = await request.body()
    answer = await run_in_threadpool(
        _forward, state, name, project, request.method, path, body, headers
    )
    return Response(
        answer.content,
        status_code=answer.status_code,
        headers={k: v for k, v in answer.headers.items() if k.lower() in PASSED},
    )


ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "What the model server answered (its status and content type).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    503: {
        **RESPONSES[503],
        "description": "The Service has no ready replica, or it did not answer "
        "(`server-unavailable`): try again once it is Ready.",
    },
}

for method in ("GET", "POST"):
    router.add_api_route(
        "/services/{name}/proxy/{path:path}",
        proxy,
        methods=[method],
        operation_id=f"proxy_service_{method.lower()}",
        summary="The Service's model server, reached through the control plane",
        tags=["services"],
        response_class=Response,
        responses=ANSWERS,
    )
