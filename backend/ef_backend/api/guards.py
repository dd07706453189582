"""`RequestGuards`: checks and headers every HTTP response of the backend goes through.

* ``Host`` must pass the allow-list (`EF_ALLOWED_HOSTS`, see `core.browser`): else 400.
* A request body may not exceed `EF_MAX_BODY_BYTES`: a larger ``Content-Length`` is refused
  before anything is read (413), a chunked body is cut off once it passes the limit, so a 40 MB
  JSON document is never parsed. (FastAPI's own ``max_body_size`` answers in plain text, not in
  the API's error shape.)
* Security headers on every answer: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``
  and a Content-Security-Policy with ``frame-ancestors 'none'`` (a route that sets its own CSP,
  such as ``/docs``, keeps it).

Pure ASGI (no ``BaseHTTPMiddleware``): streamed audio passes through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ef_backend.core.browser import host_allowed
from ef_backend.core.errors import OPENAI_PREFIX, error_body, openai_error_body

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "RequestGuards"]

#: The default policy: this origin only; no framing, plugins or foreign form targets.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self' blob:; "
    "object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def _error(path: str, status: int, code: str, message: str) -> tuple[dict[str, object], bytes]:
    """The API's error shape (OpenAI's under ``/v1/``, as its clients expect)."""
    if path.startswith(OPENAI_PREFIX):
        shape = openai_error_body(status, code, message)
    else:
        shape = error_body(code, message)
    body = json.dumps(shape).encode()
    start: dict[str, object] = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, body


class RequestGuards:
    """Host allow-list, body size and security headers around ``app``."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], max_body_bytes: int) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        send = self._with_headers(send)
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self.allowed_hosts):
            await self._refuse(
                scope,
                send,
                400,
                "invalid_host",
                "Host not allowed; add its name to EF_ALLOWED_HOSTS.",
            )
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            await self._refuse(scope, send, 413, "http_413", self._too_large)
            return
        await self.app(scope, self._limited(receive), send)

    @property
    def _too_large(self) -> str:
        return (
            f"Content Too Large: the request body exceeds {self.max_body_bytes} bytes "
            "(EF_MAX_BODY_BYTES)."
        )

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    # Raised in the route's body read; FastAPI passes HTTPExceptions on.
                    raise HTTPException(413, detail=self._too_large)
            return message

        return limited

    async def _refuse(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        start, body = _error(scope["path"], status, code, message)
        await send(start)
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                extra = [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers + extra}
            await send(message)

        return with_headers
