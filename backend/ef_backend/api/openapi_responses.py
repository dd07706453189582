"""OpenAPI descriptions of the responses routes share: audio bodies and the documented errors.

Every route lists the 4xx/5xx it can answer through `errors(...)`, and `document_guards` adds
the two that `RequestGuards` gives before any route runs, so the OpenAPI document says what can
go wrong; a test walks ``/openapi.json`` and holds every operation to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ef_backend.api.schemas import ErrorResponse, OpenAIErrorResponse
from ef_backend.core.errors import OPENAI_PREFIX
from ef_backend.services.audio import MEDIA_TYPES

_DESCRIPTIONS: dict[int, str] = {
    400: "Unknown voice: the message and `valid` list the voices to choose from.",
    401: "API key missing or invalid (only when EF_API_KEYS is set).",
    403: "The client address is not in EF_ADMIN_CIDRS.",
    404: "No such job.",
    409: "The job is not in a state that allows this; the message says which state it is in.",
    422: "Invalid input (empty or too long text, bad speed, format or field); "
    "the message names the field.",
    429: "Rate limit (EF_RATE_LIMIT) exceeded; retry after Retry-After seconds.",
    500: "Unexpected server error; details are in the server log only.",
    502: "The engine failed to synthesise this text after retries.",
    503: "Engine unavailable or queue full (EF_QUEUE_MAX); retry after Retry-After seconds.",
    504: "Synthesis still running after EF_SYNC_TIMEOUT_S; poll the job named in the body.",
    507: "The audio cache refused a write or delete (full or read-only): free space in "
    "EF_DATA_DIR or make it writable, then try again.",
}


def errors(
    *statuses: int, openai: bool = False, **overrides: str
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries for ``statuses`` (500 always), with the error body model.

    ``overrides`` replace a description: ``errors(404, d404="No such voice")``.
    """
    model = OpenAIErrorResponse if openai else ErrorResponse
    wanted = sorted({*statuses, 500})
    return {
        status: {
            "model": model,
            "description": overrides.get(f"d{status}", _DESCRIPTIONS[status]),
        }
        for status in wanted
    }


_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One server-sent event (`stream_format: sse`).",
    "properties": {
        "data": {
            "type": "string",
            "description": "JSON: `{type: speech.audio.delta, audio: <base64>}` for each piece of "
            "audio, then `{type: speech.audio.done, usage}`.",
        },
        "event": {"type": "string"},
    },
    "required": ["data"],
}


def audio_response(
    description: str, *, streamed: bool = False, ranges: bool = False
) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is audio in one of the formats (binary, not JSON).

    ``ranges``: a GET answered from the cache file, where Starlette honours ``Range`` (browsers'
    audio players ask for parts): 206 with the part, 416 outside the file."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    content: dict[str, Any] = {media: binary for media in dict.fromkeys(MEDIA_TYPES.values())}
    if streamed:
        # OpenAPI before 3.2: the schema of an event stream describes each event.
        content["text/event-stream"] = {"schema": _SSE_EVENT}
    partial: dict[int | str, dict[str, Any]] = {}
    if ranges:
        parts = {"multipart/byteranges": binary}  # several ranges in one request
        partial[206] = {
            "description": "The part of the audio that a `Range` header asked for.",
            "content": {**content, **parts},
            "headers": {"Content-Range": _CONTENT_RANGE},
        }
        partial[416] = {
            "description": "The `Range` lies outside the audio; Content-Range gives its size.",
            "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}},
            "headers": {"Content-Range": _CONTENT_RANGE},
        }
    return {
        **partial,
        200: {
            "description": description,
            "content": content,
            "headers": {
                "X-EF-Cache": {
                    "description": "hit when the audio came from the cache, else miss",
                    "schema": {"type": "string", "enum": ["hit", "miss"]},
                },
                "X-EF-Job-Id": {
                    "description": "The job that synthesised the audio (absent on a cache hit)",
                    "schema": {"type": "string"},
                },
            },
        },
    }


_CONTENT_RANGE = {"description": "`bytes <first>-<last>/<size>`", "schema": {"type": "string"}}

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
#: What `RequestGuards` answers on any route, before the route runs.
_GUARDS: dict[str, str] = {
    "400": "Host not allowed: add its name to EF_ALLOWED_HOSTS.",
    "413": "The request body exceeds EF_MAX_BODY_BYTES.",
}


def document_guards(spec: dict[str, Any]) -> dict[str, Any]:
    """Add `RequestGuards`' 400 (a foreign Host) and 413 (a body over EF_MAX_BODY_BYTES) to
    every operation of ``spec``, in the error shape of its path; returns ``spec``."""
    for path, item in spec.get("paths", {}).items():
        model = "OpenAIErrorResponse" if path.startswith(OPENAI_PREFIX) else "ErrorResponse"
        json_error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}
        for method, operation in item.items():
            if method not in _METHODS:  # path-level parameters, summary, servers
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code, description in _GUARDS.items():
                if code in responses:
                    responses[code]["description"] += f" Or: {description}"
                else:
                    responses[code] = {"description": description, "content": json_error}
            operation["responses"] = dict(sorted(responses.items()))
    return spec


def install_guard_docs(app: FastAPI) -> None:
    """Have ``app``'s OpenAPI document (built once, on first use) pass through `document_guards`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_guards(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["audio_response", "document_guards", "errors", "install_guard_docs"]
