"""Domain errors and their one mapping to HTTP.

Services raise these; `install_error_handlers` turns them into JSON bodies of the shape
``{"error": {"code": ..., "message": ...}}`` (plus extra fields) with the right status and, where a
retry makes sense, a ``Retry-After`` header. Nothing else in the code builds error responses for
domain failures.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class EchoForgeError(Exception):
    """Base of every domain error: a status, a stable code and a message that says what to do."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.extra = extra


class InvalidInput(EchoForgeError):
    status_code = 422
    code = "invalid_input"


class UnknownVoice(EchoForgeError):
    status_code = 400
    code = "unknown_voice"


class JobNotFound(EchoForgeError):
    status_code = 404
    code = "job_not_found"


class JobConflict(EchoForgeError):
    """The job is in a state that does not allow this (cancel a running job, audio of a failed one)."""

    status_code = 409
    code = "job_conflict"


class QueueFull(EchoForgeError):
    status_code = 503
    code = "queue_full"


class EngineUnavailable(EchoForgeError):
    status_code = 503
    code = "engine_unavailable"


class EngineRejected(EchoForgeError):
    """The engine refused the input (a 4xx from ef_tts): retrying will not help."""

    status_code = 422
    code = "engine_rejected"


class SynthesisFailed(EchoForgeError):
    status_code = 502
    code = "synthesis_failed"


class SyncTimeout(EchoForgeError):
    """The job is still running; the client can poll it."""

    status_code = 504
    code = "sync_timeout"


class Unauthorized(EchoForgeError):
    status_code = 401
    code = "unauthorized"


class Forbidden(EchoForgeError):
    status_code = 403
    code = "forbidden"


class RateLimited(EchoForgeError):
    status_code = 429
    code = "rate_limited"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _headers(exc: EchoForgeError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and unexpected exceptions to JSON responses."""

    @app.exception_handler(EchoForgeError)
    async def _domain(_: Request, exc: EchoForgeError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, **exc.extra),
            status_code=exc.status_code,
            headers=_headers(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", ""),
            }
            for err in exc.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        return JSONResponse(
            error_body("invalid_input", message, problems=problems), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(f"http_{exc.status_code}", str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "Internal server error; see the server log."),
            status_code=500,
        )
