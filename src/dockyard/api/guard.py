"""Who may talk to the control plane: a pure-ASGI guard in front of every route.

In order, for every request but the health check and the API's description:

1. ``Host`` must name this server (the address it is bound to, ``localhost``, or a name in
   ``DOCKYARD_ALLOWED_HOSTS``): a page on another site cannot reach it by DNS rebinding.
   A server bound to all addresses (``0.0.0.0``) accepts any ``Host`` unless the list is set.
2. An ``Origin`` (sent by browsers) must be the server's own or in
   ``DOCKYARD_ALLOWED_ORIGINS``: another site's page cannot post to it.
3. ``Authorization: Bearer <token>`` must carry the admin token (``dockyard/tokens.py``).
4. A request that changes state and carries a body must say ``application/json`` (code
   uploads: ``application/gzip``): a form or ``text/plain`` post is refused.
5. A body is read here, up to ``DOCKYARD_MAX_REQUEST_BYTES`` (code uploads: the archive
   limit ``MAX_CODE_BYTES``), 413 beyond whether the size was declared or not, before any
   route sees it.

Every refusal is ``application/problem+json`` like any other error.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from dockyard import errors as e
from dockyard.api.errors import problem_body
from dockyard.data.code import MAX_CODE_BYTES
from dockyard.settings import Settings
from dockyard.tokens import ServerToken

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN = frozenset(
    {
        "/api/v1/healthz",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        # the kube-scheduler's extender calls carry no token (they answer scores, hold no
        # secret, bound their own bodies: dockyard.placement.extender)
        "/placement/filter",
        "/placement/prioritize",
    }
)
CHANGES = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})
UPLOADS = {"/api/v1/code": (b"application/gzip", b"application/octet-stream")}
LOCAL = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


def _hostname(value: str) -> str:
    """``example.com:8080`` → ``example.com``; ``[::1]:80`` → ``::1``."""
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.token = ServerToken(settings)
        self.max_body = settings.max_request_bytes
        extra = {h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()}
        bound = settings.host.lower()
        self.any_host = bound in ANY_ADDRESS and not extra
        self.hosts = frozenset({bound, *LOCAL, *extra})
        self.origins = frozenset(
            o.strip().rstrip("/").lower() for o in settings.allowed_origins.split(",") if o.strip()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is None and scope["method"].encode() in CHANGES:
            body, refusal = await self._read_body(scope, receive)
            if refusal is None:
                await self.app(scope, _replay(body, receive), send)
                return
        elif refusal is None:
            await self.app(scope, receive, send)
            return
        assert refusal is not None
        status, body, extra = problem_body(refusal)
        headers = [(b"content-type", b"application/problem+json"), *extra]
        if isinstance(refusal, e.Unauthorized):
            headers.append((b"www-authenticate", b'Bearer realm="dockyard"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[bytes, e.DockyardError | None]:
        upload = scope["path"] in UPLOADS
        limit = MAX_CODE_BYTES if upload else self.max_body
        too_large = e.PayloadTooLarge(
            f"the request body is larger than {limit:,} bytes",
            hint="a code archive holds at most this much; leave data out of spec.code (put it "
            "in a dataset)"
            if upload
            else "send fewer documents per request, or raise DOCKYARD_MAX_REQUEST_BYTES",
        )
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return b"", too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", e.InvalidRequest("the client went away", hint="send it again")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def check(self, scope: Scope) -> e.DockyardError | None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header counts
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.any_host and _hostname(host).lower() not in self.hosts:
            return e.Forbidden(
                f"Host '{host[:100]}' is not this server",
                hint="reach it by the address it listens on, or add the name to "
                "DOCKYARD_ALLOWED_HOSTS",
            )
        origin = headers.get(b"origin")
        if origin is not None and not self._same_origin(origin.decode("latin-1"), host):
            return e.Forbidden(
                "requests from other web sites are refused",
                hint="add the site to DOCKYARD_ALLOWED_ORIGINS if it is yours",
            )
        given = headers.get(b"authorization", b"")
        expected = self.token.current()
        if expected is None:
            return e.Unauthorized("the server has no token yet", hint="restart it")
        if not given.startswith(b"Bearer ") or not hmac.compare_digest(
            given[len(b"Bearer ") :].strip(), expected.encode()
        ):
            return e.Unauthorized(
                "a valid token is needed (Authorization: Bearer …)",
                hint="the CLI and SDK read it from DOCKYARD_HOME/token; elsewhere set "
                "DOCKYARD_TOKEN",
            )
        if scope["method"].encode() in CHANGES:
            return self._content(scope, headers)
        return None

    def _same_origin(self, origin: str, host: str) -> bool:
        if origin.rstrip("/").lower() in self.origins:
            return True
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc.lower() == host.lower()

    @staticmethod
    def _content(scope: Scope, headers: dict[bytes, bytes]) -> e.DockyardError | None:
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = headers.get(b"content-length", b"0") not in (b"0", b"") or (
            b"transfer-encoding" in headers
        )
        if not has_body and not kind:
            return None
        allowed = UPLOADS.get(scope["path"], (b"application/json",))
        if kind in allowed:
            return None
        return e.UnsupportedMediaType(
            f"this request needs Content-Type {allowed[0].decode()}, "
            f"not '{kind.decode('latin-1')[:100] or 'none'}'",
            hint="send JSON (the CLI and SDK do)",
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read by the guard, then what the client sends next
    (its disconnect, which a streaming answer listens for)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
