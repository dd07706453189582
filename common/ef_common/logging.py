"""JSON logs: one object per line on stdout, with the request id and the trace context.

Every record carries ``time``, ``level``, ``logger``, ``message``, ``service``, ``request_id``,
``trace_id`` and ``span_id`` (null outside a request or a sampled trace), plus whatever the caller
passed in ``extra=``. The access log (logger ``ef.access``, written for
:class:`ef_common.asgi.RequestContextMiddleware` by :func:`write_access_log`) adds ``method``,
``route``, ``path``, ``status``, ``duration_ms``, ``client_ip`` and ``client``.

uvicorn's own loggers are routed through the same handler; its access log is switched off
because ours carries the route template, request id and trace id.

As a safety net, ``extra`` fields whose name suggests spoken text or a secret (``text``,
``api_key``, ``authorization``, ...) are replaced by ``"[redacted]"``: log the length instead.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from opentelemetry import trace

from ef_common.context import current_request

if TYPE_CHECKING:
    from ef_common.asgi import RequestRecord

__all__ = [
    "ACCESS_LOGGER",
    "REDACTED_FIELDS",
    "JsonFormatter",
    "configure_logging",
    "uvicorn_log_config",
    "write_access_log",
]

#: The logger the access-log middleware writes to.
ACCESS_LOGGER = "ef.access"

#: ``extra`` keys that are never written: spoken text and credentials.
REDACTED_FIELDS = frozenset(
    {
        "text",
        "input",
        "prompt",
        "api_key",
        "apikey",
        "key",
        "authorization",
        "password",
        "secret",
        "token",
        "cookie",
        "smtp_password",
    }
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName", "color_message"}

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")

# One encoder for every record: json.dumps() with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode
_quote: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
_access_logger = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """Formats a record as one compact JSON object (no newlines inside)."""

    _time_cache: ClassVar[tuple[int, str]] = (-1, "")

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def _timestamp(self, created: float) -> str:
        seconds = int(created)
        cached_second, prefix = JsonFormatter._time_cache
        if cached_second != seconds:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            JsonFormatter._time_cache = (seconds, prefix)
        return f"{prefix}.{int((created - seconds) * 1000):03d}Z"

    def access_line(self, request: RequestRecord) -> str:
        """The access-log line :meth:`format` would write, built without a LogRecord.

        Same fields, same order as the generic path (a test keeps the two in step); about a
        fifth of its cost, which matters on a line written for every request.
        """
        if request.trace_id is not None:
            trace_id = f'"{request.trace_id}"'
            span_id = f'"{request.span_id}"'
        else:
            trace_id = span_id = "null"
        rid = request.request_id
        client_ip = request.client_ip
        client = request.client
        method = request.method
        route = request.route
        status = request.status
        return (
            f'{{"time":"{self._timestamp(request.time)}","level":"INFO",'
            f'"logger":"{ACCESS_LOGGER}","message":{_quote(f"{method} {route} {status}")},'
            f'"service":{_quote(self.service)},'
            f'"request_id":{_quote(rid) if rid is not None else "null"},'
            f'"trace_id":{trace_id},"span_id":{span_id},"method":{_quote(method)},'
            f'"route":{_quote(route)},"path":{_quote(request.path)},"status":{status:d},'
            f'"duration_ms":{round(request.duration_s * 1000.0, 3)!r},'
            f'"client_ip":{_quote(client_ip) if client_ip is not None else "null"},'
            f'"client":{_quote(client) if client is not None else "null"}}}'
        )

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        if "request_id" in fields:  # given with the record (the access log, written later)
            request_id = fields["request_id"]
            trace_id = fields.get("trace_id")
            span_id = fields.get("span_id")
        else:
            ctx = current_request()
            request_id = ctx.request_id if ctx is not None else None
            span_context = trace.get_current_span().get_span_context()
            if span_context.is_valid:
                trace_id = format(span_context.trace_id, "032x")
                span_id = format(span_context.span_id, "016x")
            else:
                trace_id = span_id = None
        doc: dict[str, Any] = {
            "time": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "request_id": request_id,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in doc:
                doc[key] = "[redacted]" if key.lower() in REDACTED_FIELDS else value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return _encode(doc)


def _fast_handler() -> logging.StreamHandler[Any] | None:
    """The root JSON handler when it is the only place access logs go, else None."""
    if _access_logger.handlers or _access_logger.filters or not _access_logger.propagate:
        return None
    root = logging.root
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if (
        type(handler) is logging.StreamHandler
        and isinstance(handler.formatter, JsonFormatter)
        and not handler.filters
        and handler.level <= logging.INFO
    ):
        return handler
    return None


def write_access_log(request: RequestRecord) -> None:
    """Write the access-log line of ``request`` (logger ``ef.access``, level INFO).

    When the access log goes only to our JSON handler (the normal set-up), the line is built
    directly; otherwise (tests capturing logs, extra handlers) it goes through ``logging`` like
    any record, with the same fields and time.
    """
    if not _access_logger.isEnabledFor(logging.INFO):
        return
    handler = _fast_handler()
    if handler is not None:
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        text = formatter.access_line(request) + handler.terminator
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            handler.release()
        return
    record = _access_logger.makeRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        (request.method, request.route, request.status),
        None,
        extra={
            "request_id": request.request_id,
            "trace_id": request.trace_id,
            "span_id": request.span_id,
            "method": request.method,
            "route": request.route,
            "path": request.path,
            "status": request.status,
            "duration_ms": round(request.duration_s * 1000.0, 3),
            "client_ip": request.client_ip,
            "client": request.client,
        },
    )
    record.created = request.time  # when the response ended, as on the fast path
    record.msecs = (request.time - int(request.time)) * 1000.0
    _access_logger.handle(record)


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(
            f"log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}"
        )
    return value


def _skip_unused_record_fields() -> None:
    # The JSON never shows source file, thread or process, so do not compute them per record
    # (the optimisation the logging HOWTO describes; about 2 us per record).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(
    level: str | int = "INFO", *, service: str, stream: TextIO | None = None
) -> None:
    """Send every log record of this process, as JSON, to stdout (or ``stream``).

    Idempotent: calling it again (uvicorn workers, tests) replaces the handler rather than
    adding a second one. Run uvicorn with ``log_config=uvicorn_log_config(...)`` (or
    ``log_config=None``) so that it does not install its own text handlers afterwards.
    """
    _skip_unused_record_fields()
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.set_name("ef-json")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level))
    for name in _UVICORN_LOGGERS:
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(logging.NOTSET)
    # Our middleware writes the access log (with route template, request id and trace id).
    uv_access = logging.getLogger("uvicorn.access")
    uv_access.handlers.clear()
    uv_access.propagate = False
    uv_access.disabled = True


def uvicorn_log_config(level: str | int = "INFO", *, service: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``.

    uvicorn applies its log config in every worker process it spawns; this one installs the
    same JSON handler as :func:`configure_logging`, so workers log alike.
    """
    lvl = logging.getLevelName(_level(level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": lvl, "handlers": ["stdout"]},
        "loggers": {
            "uvicorn": {"level": "NOTSET", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "NOTSET", "handlers": [], "propagate": True},
            "uvicorn.asgi": {"level": "NOTSET", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }
