"""JSON logs: one object per line, the documented fields, request and trace ids, no secrets."""

from __future__ import annotations

import logging
import logging.config

import pytest
from ef_common.asgi import RequestRecord
from ef_common.context import reset_request, start_request
from ef_common.logging import (
    ACCESS_LOGGER,
    configure_logging,
    uvicorn_log_config,
    write_access_log,
)
from opentelemetry.sdk.trace import TracerProvider

from tests.utils.logs import captured_logs, json_lines

BASE_FIELDS = ["time", "level", "logger", "message", "service", "request_id", "trace_id", "span_id"]
ACCESS_FIELDS = ["method", "route", "path", "status", "duration_ms", "client_ip", "client"]


def test_a_record_is_one_json_object_with_the_base_fields() -> None:
    with captured_logs(service="ef-test") as out:
        logging.getLogger("ef.demo").warning("queue %s is %d%% full", "main", 90)
    (doc,) = json_lines(out.getvalue())
    assert list(doc)[: len(BASE_FIELDS)] == BASE_FIELDS
    assert doc["level"] == "WARNING"
    assert doc["logger"] == "ef.demo"
    assert doc["message"] == "queue main is 90% full"
    assert doc["service"] == "ef-test"
    assert doc["request_id"] is None and doc["trace_id"] is None and doc["span_id"] is None
    assert doc["time"].endswith("Z") and len(doc["time"]) == len("2025-01-01T00:00:00.000Z")


def test_extra_fields_are_kept_and_secrets_and_text_redacted() -> None:
    spoken = "the secret sentence nobody may read in a log"
    with captured_logs() as out:
        logging.getLogger("ef.demo").info(
            "job queued",
            extra={"job_id": "j1", "text_chars": len(spoken), "text": spoken, "api_key": "k" * 20},
        )
    (doc,) = json_lines(out.getvalue())
    assert doc["job_id"] == "j1"
    assert doc["text_chars"] == len(spoken)
    assert doc["text"] == "[redacted]"
    assert doc["api_key"] == "[redacted]"
    assert spoken not in out.getvalue() and "k" * 20 not in out.getvalue()


def test_multiline_messages_and_exceptions_stay_on_one_line() -> None:
    with captured_logs() as out:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logging.getLogger("ef.demo").exception("failed\nbadly")
    assert len(out.getvalue().splitlines()) == 1
    (doc,) = json_lines(out.getvalue())
    assert doc["message"] == "failed\nbadly"
    assert "ValueError: boom" in doc["exception"]


def test_level_filters_records() -> None:
    with captured_logs(level="WARNING") as out:
        logging.getLogger("ef.demo").info("hidden")
        logging.getLogger("ef.demo").error("shown")
    assert [d["message"] for d in json_lines(out.getvalue())] == ["shown"]


def test_bad_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="log level must be DEBUG, INFO, WARNING, ERROR or CRIT"):
        configure_logging("LOUD", service="x")


def test_request_and_trace_ids_appear_inside_a_request_and_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with captured_logs() as out:
        token = start_request("req-42")
        try:
            with tracer.start_as_current_span("work") as span:
                logging.getLogger("ef.demo").info("inside")
                ctx = span.get_span_context()
        finally:
            reset_request(token)
        logging.getLogger("ef.demo").info("outside")
    inside, outside = json_lines(out.getvalue())
    assert inside["request_id"] == "req-42"
    assert inside["trace_id"] == f"{ctx.trace_id:032x}"
    assert inside["span_id"] == f"{ctx.span_id:016x}"
    assert outside["request_id"] is None and outside["trace_id"] is None


def test_access_line_is_the_same_on_the_fast_and_the_generic_path() -> None:
    """The direct writer and the logging path produce the same fields, order and time."""
    request = RequestRecord(
        method="GET",
        route="/api/v1/jobs/{job_id}",
        status=404,
        duration_s=0.0123456,
        time=1_790_000_000.25,
        path='odd/"path"\u00e9',
        request_id="r1",
        client_ip="10.0.0.7",
        client="kitchen",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )
    with captured_logs() as out:
        write_access_log(request)
        # An extra handler turns the fast path off: the record goes through logging.
        logging.getLogger().addHandler(logging.NullHandler())
        try:
            write_access_log(request)
        finally:
            logging.getLogger().handlers.pop()
    fast, generic = json_lines(out.getvalue())
    assert list(fast) == BASE_FIELDS + ACCESS_FIELDS
    assert fast == generic
    assert fast["time"] == "2026-09-21T14:13:20.250Z"
    assert fast["logger"] == ACCESS_LOGGER
    assert fast["path"] == 'odd/"path"\u00e9'
    assert fast["duration_ms"] == 12.346
    assert fast["client"] == "kitchen" and fast["request_id"] == "r1"
    assert fast["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert fast["span_id"] == "b7ad6b7169203331"


def test_uvicorn_loggers_go_through_the_json_handler() -> None:
    with captured_logs() as out:
        logging.getLogger("uvicorn.error").info("Started server process [1]")
        logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    docs = json_lines(out.getvalue())
    assert [d["logger"] for d in docs] == ["uvicorn.error"], "uvicorn's access log must be off"


def test_uvicorn_log_config_installs_the_same_formatter() -> None:
    config = uvicorn_log_config("debug", service="ef-x")
    with captured_logs():  # restores the root logger afterwards
        logging.config.dictConfig(config)  # what uvicorn does in each worker
        handler = logging.getLogger().handlers[0]
        record = logging.LogRecord("uvicorn.error", logging.INFO, "x", 1, "hello", None, None)
        (doc,) = json_lines(handler.format(record))
        assert doc["service"] == "ef-x" and doc["message"] == "hello"
        assert logging.getLogger().level == logging.DEBUG
        assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
