"""Errors as ``application/problem+json`` (RFC 9457) with the class's ``status`` and ``code``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from dockyard import errors as e

log = logging.getLogger("dockyard.api")


def problem(
    status: int, code: str, title: str, detail: str, hint: str | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://dockyard.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **({"hint": hint} if hint else {}),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    @app.exception_handler(e.DockyardError)
    async def _domain(_request: Request, exc: e.DockyardError) -> JSONResponse:
        return problem(
            exc.status,
            exc.code,
            type(exc).__name__,
            exc.message,
            exc.hint,
            **({"details": exc.details} if exc.details else {}),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return problem(
            422,
            e.InvalidRequest.code,
            "InvalidRequest",
            "malformed request: " + "; ".join(problems),
            "see the API reference at /docs",
            details={"errors": problems},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(
            500,
            e.InternalError.code,
            "InternalError",
            f"{type(exc).__name__}: {exc}",
            "this is a bug: please report it",
        )
