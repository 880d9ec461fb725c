"""Errors as ``application/problem+json`` (RFC 9457) with the class's ``status`` and ``code``."""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dockyard import errors as e
from dockyard.api.views import Problem
from dockyard.spec import kind_of

log = logging.getLogger("dockyard.api")
PROBLEM = "application/problem+json"
# every route may answer a client error (4xx) or say it is unavailable (503), as problem+json
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": Problem,
        "description": "The request was wrong: what, and how to fix it.",
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
    503: {
        "model": Problem,
        "description": "A runtime, engine or the store is unavailable: retry later.",
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
}


# what the router itself answers (no route, wrong method, a body it cannot parse)
HTTP_ERRORS: dict[int, type[e.DockyardError]] = {
    400: e.InvalidRequest,
    404: e.NotFound,
    405: e.MethodNotAllowed,
    415: e.UnsupportedMediaType,
    422: e.MalformedRequest,
}


def _fields(exc: e.DockyardError) -> dict[str, Any]:
    return {
        "type": f"https://dockyard.dev/problems/{exc.code}",
        "title": type(exc).__name__,
        "status": exc.status,
        "detail": exc.message,
        "code": exc.code,
        **({"hint": exc.hint} if exc.hint else {}),
        **({"details": exc.details} if exc.details else {}),
    }


def _answer(exc: e.DockyardError) -> JSONResponse:
    return JSONResponse(_fields(exc), status_code=exc.status, media_type=PROBLEM)


def problem_body(exc: e.DockyardError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """A problem+json answer as raw ASGI parts (for middleware)."""
    body = json.dumps(_fields(exc)).encode()
    return exc.status, body, [(b"content-length", str(len(body)).encode())]


@functools.cache
def _methods(app: FastAPI) -> list[tuple[re.Pattern[str], list[str]]]:
    """Every documented path as a pattern, with its methods (from the OpenAPI document)."""
    out = []
    for template, operations in app.openapi()["paths"].items():
        pattern = re.escape(template).replace(r"\{path\}", ".+")  # a file path: any depth
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        out.append((re.compile(f"^{pattern}$"), sorted(m.upper() for m in operations)))
    return out


def _allowed(request: Request) -> list[str]:
    path = request.url.path
    return sorted(
        {m for regex, methods in _methods(request.app) if regex.match(path) for m in methods}
    )


def _kind_hint(path: str) -> str | None:
    """``/api/v1/jbos``: say which kinds there are (and which one was meant)."""
    parts = path.split("/")
    if len(parts) < 4 or parts[:3] != ["", "api", "v1"]:
        return None
    try:
        kind_of(parts[3])
    except e.InvalidRequest as exc:
        return exc.hint
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(e.DockyardError)
    async def _domain(_request: Request, exc: e.DockyardError) -> JSONResponse:
        return _answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in errors]
        if any(err.get("type") == "json_invalid" for err in errors):  # not even JSON
            return _answer(
                e.InvalidRequest(
                    "the body is not valid JSON: " + "; ".join(problems)[:1000],
                    hint="send a JSON document (Content-Type: application/json)",
                )
            )
        return _answer(
            e.MalformedRequest(
                "malformed request: " + "; ".join(problems)[:4000],
                hint="see the API reference at /docs",
                details={"errors": problems[:50]},
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = HTTP_ERRORS.get(exc.status_code, e.InvalidRequest)
        hint = _kind_hint(request.url.path) if exc.status_code == 404 else None
        allowed = _allowed(request) if exc.status_code == 405 else []
        if allowed:
            hint = f"{request.url.path} answers {', '.join(allowed)}"
        response = _answer(cls(str(exc.detail), hint=hint))
        response.status_code = exc.status_code  # what the router decided (e.g. 405)
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:  # every method of the path, not just the first route's
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _answer(
            e.InternalError(f"{type(exc).__name__}: {exc}", hint="this is a bug: please report it")
        )
