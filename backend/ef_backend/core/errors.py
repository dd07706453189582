"""Domain errors and their one mapping to HTTP.

Services raise these; `install_error_handlers` turns them into JSON bodies of the shape
``{"error": {"code": ..., "message": ...}}`` (plus extra fields) with the right status and, where a
retry makes sense, a ``Retry-After`` header. Nothing else in the code builds error responses for
domain failures.

Under the OpenAI-compatible prefix ``/v1/`` the same errors take OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, because the official clients parse that.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
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
    """The job's state does not allow this (cancel a running job, audio of a failed one)."""

    status_code = 409
    code = "job_conflict"


class QueueFull(EchoForgeError):
    status_code = 503
    code = "queue_full"


class EngineUnavailable(EchoForgeError):
    """The engine cannot answer now; ``reason`` is unreachable, timeout or engine_error.

    ``down`` says the engine as a whole is out (unreachable, or 503: model loading or failed),
    as opposed to this one call failing: queued work then waits for it instead of failing.
    """

    status_code = 503
    code = "engine_unavailable"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "unreachable",
        retry_after: float | None = 5.0,
        down: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.reason = reason
        self.down = down


class EngineRejected(EchoForgeError):
    """The engine refused the input (a 4xx from ef_tts): retrying will not help."""

    status_code = 422
    code = "engine_rejected"

    def __init__(self, message: str, *, reason: str = "rejected", **extra: Any) -> None:
        super().__init__(message, **extra)
        self.reason = reason


class SynthesisFailed(EchoForgeError):
    status_code = 502
    code = "synthesis_failed"


class ClientGone(EchoForgeError):
    """The client disconnected while it waited (nginx's 499: nobody reads the answer)."""

    status_code = 499
    code = "client_closed_request"


class StorageError(EchoForgeError):
    """The data directory refused a write or delete (full, read-only): not the engine's fault."""

    status_code = 507
    code = "storage_error"


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


#: Retry-After of a 503 whose error did not name one (engine down: probes run every few s).
DEFAULT_RETRY_AFTER_S = 5.0

#: Paths under this prefix answer errors in OpenAI's shape.
OPENAI_PREFIX = "/v1/"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _openai_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error_body(
    status: int, code: str, message: str, *, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's error object; extra fields (such as the valid voices) ride along."""
    return {
        "error": {
            "message": message,
            "type": _openai_type(status),
            "param": param,
            "code": code,
            **extra,
        }
    }


def _headers(exc: EchoForgeError) -> dict[str, str]:
    headers: dict[str, str] = {}
    retry_after = exc.retry_after
    if retry_after is None and exc.status_code == 503:
        retry_after = DEFAULT_RETRY_AFTER_S  # a 503 always says when to come back
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
    **extra: Any,
) -> JSONResponse:
    if request.url.path.startswith(OPENAI_PREFIX):
        body = openai_error_body(status, code, message, param=param, **extra)
    elif param is not None and "field" not in extra:
        body = error_body(code, message, field=param, **extra)
    else:
        body = error_body(code, message, **extra)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _problem(err: Mapping[str, Any]) -> dict[str, str]:
    """One validation error as ``{field, message}``; the whole body is called ``body``."""
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        # loc holds the character position here, not a field: say where the JSON broke.
        where = loc[-1] if len(loc) > 1 else "?"
        return {"field": "body", "message": f"malformed JSON at character {where}"}
    field = ".".join(p for p in loc if p != "body") or "body"
    return {"field": field, "message": str(err.get("msg", ""))}


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and unexpected exceptions to JSON responses."""

    @app.exception_handler(EchoForgeError)
    async def _domain(request: Request, exc: EchoForgeError) -> JSONResponse:
        extra = dict(exc.extra)
        param = extra.pop("param", None)
        if param is None and isinstance(exc, UnknownVoice):
            param = "voice"
        if exc.status_code >= 500:
            log.warning(
                "request failed",
                extra={"error_code": exc.code, "status": exc.status_code, "error": exc.message},
            )
        return _respond(
            request,
            exc.status_code,
            exc.code,
            exc.message,
            headers=_headers(exc),
            param=param,
            **extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(err) for err in exc.errors()]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        param = problems[0]["field"] if problems else None
        return _respond(
            request, 422, "invalid_input", message, param=param or None, problems=problems
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _respond(
            request,
            exc.status_code,
            f"http_{exc.status_code}",
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _respond(
            request, 500, "internal_error", "Internal server error; see the server log."
        )
