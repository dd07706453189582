"""One error body for every 4xx/5xx: ``{"error": {"code", "message"}}``, mapped in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ef_tts.audio import UnsupportedFormat
from ef_tts.engines import InputRejected
from ef_tts.runtime import NotReady, SynthesisError

log = logging.getLogger(__name__)

#: Seconds a client should wait before asking a loading model again.
LOADING_RETRY_AFTER_S = 5


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to statuses; anything unexpected becomes a logged, generic 500."""

    def _count_rejected(request: Request) -> None:
        request.app.state.runtime.count_rejected()

    @app.exception_handler(InputRejected)
    async def _rejected(request: Request, exc: InputRejected) -> JSONResponse:
        _count_rejected(request)
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(UnsupportedFormat)
    async def _format(request: Request, exc: UnsupportedFormat) -> JSONResponse:
        _count_rejected(request)
        return error_response(400, "unsupported_format", str(exc))

    @app.exception_handler(NotReady)
    async def _not_ready(_: Request, exc: NotReady) -> JSONResponse:
        if exc.state == "loading":
            headers = {"Retry-After": str(LOADING_RETRY_AFTER_S)}
            return error_response(503, "model_loading", str(exc), headers)
        return error_response(503, "model_failed", str(exc))

    @app.exception_handler(SynthesisError)
    async def _synthesis(_: Request, exc: SynthesisError) -> JSONResponse:
        return error_response(500, "synthesis_failed", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        _count_rejected(request)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(422, "invalid_request", "; ".join(parts) or "Invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "Internal server error")
