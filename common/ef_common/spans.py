"""A lean implementation of the OpenTelemetry tracing API: spans that cost a few µs.

Every part of EchoForge (and any OpenTelemetry instrumentation library) traces through the
standard ``opentelemetry.trace`` API; this module is what stands behind it when tracing is on,
in place of the OpenTelemetry SDK's ``TracerProvider``. The SDK spends about 17 µs creating and
ending a span and another 11 µs queueing it for export; with encoding that was 30 % of a
trivial request (figures in docs/performance.md). Here a span is a slotted object whose
context is built only when asked for, and a finished span is one ``deque.append``.

Same behaviour as the SDK where it is observable: W3C ids from ``random.getrandbits``, the
standard samplers from ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (the trace-id ratio
uses the SDK's bound, so both keep the same traces), the span limits from
``OTEL_SPAN_*_LIMIT``/``OTEL_ATTRIBUTE_*_LIMIT``, status rules (OK is final, UNSET ignored),
``exception`` events, and context-manager exits that record the exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import (
    DEFAULT_TRACE_STATE,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

from ef_common.request_batch import flush_pending

try:  # the API's own decorator: start_as_current_span also decorates async functions
    from opentelemetry.util._decorator import _agnosticcontextmanager as _contextmanager
except ImportError:  # pragma: no cover - older API
    _contextmanager = contextlib.contextmanager  # type: ignore[assignment]

__all__ = [
    "SAMPLERS",
    "LeanSpan",
    "LeanTracer",
    "LeanTracerProvider",
    "SpanLimits",
    "SpanProcessor",
    "env_int",
    "sampler_from_env",
]

log = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SCALARS = (str, bool, int, float)
_ID_MASK_64 = 0xFFFFFFFFFFFFFFFF

_Event = tuple[str, int, dict[str, Any]]


class SpanProcessor(Protocol):
    """Receives every finished, sampled span (``ef_common.span_export.BatchExporter``)."""

    def on_end(self, span: LeanSpan) -> None: ...

    def force_flush(self, timeout_s: float = ...) -> bool: ...

    def shutdown(self) -> None: ...


# --- sampling --------------------------------------------------------------------------------

#: ``OTEL_TRACES_SAMPLER`` values understood (the OpenTelemetry SDK's built-in set).
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)

#: decide(parent context or None, trace id) -> sampled?
Sampler = Callable[[SpanContext | None, int], bool]


def _ratio_from_env() -> float:
    raw = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not raw:
        return 1.0
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio in [0, 1]; using 1.0", raw)
        return 1.0
    return rate


def sampler_from_env() -> tuple[str, Sampler]:
    """The sampler ``OTEL_TRACES_SAMPLER`` names (default ``parentbased_always_on``)."""
    name = os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        raise ValueError(
            f"OTEL_TRACES_SAMPLER={name!r}: unsupported sampler (use one of {', '.join(SAMPLERS)})"
        )
    root_name = name.removeprefix("parentbased_")
    if root_name == "always_on":

        def root(trace_id: int) -> bool:
            return True
    elif root_name == "always_off":

        def root(trace_id: int) -> bool:
            return False
    else:
        # The SDK's TraceIdRatioBased: the low 64 bits of the trace id below rate * 2**64.
        bound = round(_ratio_from_env() * (_ID_MASK_64 + 1))

        def root(trace_id: int) -> bool:
            return trace_id & _ID_MASK_64 < bound

    if name.startswith("parentbased_"):

        def decide(parent: SpanContext | None, trace_id: int) -> bool:
            if parent is not None and parent.is_valid:
                return bool(parent.trace_flags & TraceFlags.SAMPLED)
            return root(trace_id)
    else:

        def decide(parent: SpanContext | None, trace_id: int) -> bool:
            return root(trace_id)

    return name, decide


# --- limits ----------------------------------------------------------------------------------


def env_int(names: Sequence[str], default: int | None, *, minimum: int = 0) -> int | None:
    """The first of the ``names`` set in the environment, as a whole number >= ``minimum``."""
    for name in names:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError as exc:
                raise ValueError(f"{name}={raw!r}: must be a whole number") from exc
            if value < minimum:
                raise ValueError(
                    f"{name}={raw!r}: must be positive"
                    if minimum == 1
                    else f"{name}={raw!r}: must not be below {minimum}"
                )
            return value
    return default


class SpanLimits:
    """``OTEL_SPAN_*`` / ``OTEL_ATTRIBUTE_*`` limits (defaults as the SDK: 128, no length cap)."""

    __slots__ = ("attribute_count", "event_count", "length", "link_count")

    def __init__(self) -> None:
        count = ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT")
        self.attribute_count: int = env_int(count, 128) or 0
        self.event_count: int = env_int(("OTEL_SPAN_EVENT_COUNT_LIMIT",), 128) or 0
        self.link_count: int = env_int(("OTEL_SPAN_LINK_COUNT_LIMIT",), 128) or 0
        length = ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
        self.length: int | None = env_int(length, None)


def _clean(value: Any, length: int | None) -> Any:
    """An attribute value as OpenTelemetry allows it, or None to drop it (as the SDK does)."""
    if isinstance(value, _SCALARS):
        if length is not None and isinstance(value, str):
            return value[:length]
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        kinds = {type(v) for v in value if v is not None}
        if len(kinds) <= 1 and kinds <= set(_SCALARS):
            if length is not None and kinds == {str}:
                return tuple(v if v is None else v[:length] for v in value)
            return tuple(value)
    if value is not None:
        log.debug("dropped a span attribute of type %s", type(value).__name__)
    return None


def _clean_attributes(
    attributes: types.Attributes, limits: SpanLimits
) -> tuple[dict[str, Any], int]:
    if not attributes:
        return {}, 0
    if limits.length is None and len(attributes) <= limits.attribute_count:
        for value in attributes.values():
            if type(value) not in _SCALARS:
                break
        else:  # the usual case: a few plain values, kept as they are
            return dict(attributes), 0
    cleaned: dict[str, Any] = {}
    return cleaned, _admit(cleaned, attributes, limits)


def _admit(target: dict[str, Any], attributes: Mapping[str, Any], limits: SpanLimits) -> int:
    """Put the valid ``attributes`` into ``target`` within the count limit; returns the dropped."""
    dropped = 0
    for key, value in attributes.items():
        if type(value) not in _SCALARS or limits.length is not None:
            value = _clean(value, limits.length)
            if value is None:
                continue
        if key not in target and len(target) >= limits.attribute_count:
            dropped += 1
            continue
        target[key] = value
    return dropped


# --- spans -----------------------------------------------------------------------------------


class Scope:
    """The instrumentation scope of a tracer (name, version, attributes)."""

    __slots__ = ("attributes", "name", "otlp", "schema_url", "version")

    def __init__(
        self, name: str, version: str | None, schema_url: str | None, attributes: Any
    ) -> None:
        self.name = name
        self.version = version
        self.schema_url = schema_url
        self.attributes = dict(attributes) if attributes else None
        #: its OTLP encoding, filled in by the exporter on first use
        self.otlp: bytes | None = None


class LeanSpan(trace.Span):
    """A recording (sampled) span; exported once when it ends."""

    __slots__ = (
        "_context",
        "_tracer",
        "attributes",
        "dropped_attributes",
        "dropped_events",
        "dropped_links",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "parent_id",
        "parent_is_remote",
        "record_exceptions",
        "set_status_on_exception",
        "span_id",
        "start_time",
        "status_code",
        "status_description",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        tracer: LeanTracer,
        name: str,
        trace_id: int,
        span_id: int,
        trace_state: TraceState,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        dropped_attributes: int,
        links: list[Link] | tuple[()],
        dropped_links: int,
        start_time: int,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> None:
        self._tracer = tracer
        self._context: SpanContext | None = None
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_state = trace_state
        self.parent_id = parent.span_id if parent is not None else None
        self.parent_is_remote = parent is not None and parent.is_remote
        self.kind = kind
        self.attributes = attributes
        self.dropped_attributes = dropped_attributes
        # Most spans have no events or links: a shared empty tuple until the first one, so a
        # span queued for export holds two fewer objects for the garbage collector to track.
        self.links = links
        self.dropped_links = dropped_links
        self.events: list[_Event] | tuple[()] = ()
        self.dropped_events = 0
        self.start_time = start_time
        self.end_time: int | None = None
        self.status_code = StatusCode.UNSET
        self.status_description: str | None = None
        self.record_exceptions = record_exception
        self.set_status_on_exception = set_status_on_exception

    @property
    def scope(self) -> Scope:
        return self._tracer.scope

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            context = self._context = SpanContext(
                self.trace_id, self.span_id, False, _SAMPLED, self.trace_state
            )
        return context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is not None:
            return
        self.dropped_attributes += _admit(self.attributes, attributes, self._tracer.limits)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self.end_time is not None:
            return
        if len(self.events) >= self._tracer.limits.event_count:
            self.dropped_events += 1
            return
        cleaned, _ = _clean_attributes(attributes, self._tracer.limits)
        when = timestamp if timestamp is not None else time.time_ns()
        events = self.events
        if not isinstance(events, list):
            new_events: list[_Event] = []
            events = self.events = new_events
        events.append((name, when, cleaned))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is not None or not context.is_valid:
            return
        if len(self.links) >= self._tracer.limits.link_count:
            self.dropped_links += 1
            return
        links = self.links
        if not isinstance(links, list):
            new_links: list[Link] = []
            links = self.links = new_links
        links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None or self.status_code is StatusCode.OK:
            return  # OK is final, as in the SDK
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if code is StatusCode.UNSET:
            return
        self.status_code = code
        self.status_description = description if code is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else time.time_ns()
        self._tracer.processor.on_end(self)

    def end_request(
        self, name: str, attributes: dict[str, Any], error: bool, end_time: int | None = None
    ) -> None:
        """``update_name``, ``set_attributes``, an ERROR status if ``error``, then ``end``.

        The request middleware's way to finish its span, after the response (in its batch,
        with the time the response ended): one call instead of four, for attributes it built
        itself (plain values); limits and "OK is final" still apply.
        """
        if self.end_time is not None:
            return
        self.name = name
        limits = self._tracer.limits
        if (
            limits.length is None
            and len(self.attributes) + len(attributes) <= limits.attribute_count
        ):
            self.attributes.update(attributes)
        else:
            self.dropped_attributes += _admit(self.attributes, attributes, limits)
        if error and self.status_code is not StatusCode.OK:
            self.status_code = StatusCode.ERROR
            self.status_description = None
        self.end_time = end_time if end_time is not None else time.time_ns()
        self._tracer.processor.on_end(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.end_time is None:
            if self.record_exceptions:
                self.record_exception(exc_val, escaped=True)
            if self.set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()


class LeanTracer(trace.Tracer):
    """Starts :class:`LeanSpan` objects for one instrumentation scope."""

    def __init__(self, provider: LeanTracerProvider, scope: Scope) -> None:
        self.scope = scope
        self.limits = provider.limits
        self.processor = provider.processor
        self._sampled = provider.sampler
        self._getrandbits = random.getrandbits
        self._time_ns = time.time_ns

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: trace._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and not parent.is_valid:
            parent = None
        trace_id, span_id, trace_state, sampled = self._ids(parent)
        if not sampled:
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, _NOT_SAMPLED, trace_state)
            )
        limits = self.limits
        cleaned, dropped = _clean_attributes(attributes, limits)
        kept_links: list[Link] | tuple[()] = ()
        dropped_links = 0
        if links:
            kept: list[Link] = []
            for link in links:
                if not link.context.is_valid:
                    continue
                if len(kept) >= limits.link_count:
                    dropped_links += 1
                    continue
                kept.append(link)
            kept_links = kept
        return LeanSpan(
            self,
            name,
            trace_id,
            span_id,
            trace_state,
            parent,
            kind,
            cleaned,
            dropped,
            kept_links,
            dropped_links,
            start_time if start_time is not None else self._time_ns(),
            record_exception,
            set_status_on_exception,
        )

    def _ids(self, parent: SpanContext | None) -> tuple[int, int, TraceState, bool]:
        """Trace id, span id and trace state of a new span under ``parent``, and the sampler's
        decision."""
        if parent is not None:
            trace_id = parent.trace_id
            trace_state = parent.trace_state
        else:
            trace_id = self._getrandbits(128) or 1
            trace_state = DEFAULT_TRACE_STATE
        return trace_id, self._getrandbits(64) or 1, trace_state, self._sampled(parent, trace_id)

    def start_request_span(
        self, name: str, parent: SpanContext | None, attributes: dict[str, Any]
    ) -> trace.Span:
        """A SERVER span for a request middleware, which found the parent itself (None: a new
        trace) and built the attributes (plain values).

        The same ids, sampling and limits as :meth:`start_span`, without the context lookup
        and attribute checks that a request's own span never needs.
        """
        trace_id, span_id, trace_state, sampled = self._ids(parent)
        if not sampled:
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, _NOT_SAMPLED, trace_state)
            )
        limits = self.limits
        dropped = 0
        if limits.length is not None or len(attributes) > limits.attribute_count:
            attributes, dropped = _clean_attributes(attributes, limits)
        return LeanSpan(
            self,
            name,
            trace_id,
            span_id,
            trace_state,
            parent,
            SpanKind.SERVER,
            attributes,
            dropped,
            (),
            0,
            self._time_ns(),
            True,
            True,
        )

    @_contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: trace._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(trace.TracerProvider):
    """The tracer provider EchoForge installs when ``OTEL_TRACES_EXPORTER`` asks for traces.

    ``resource`` holds the resource attributes (``service.name`` and the rest); finished spans
    go to ``processor``.
    """

    def __init__(
        self,
        processor: SpanProcessor,
        resource: Mapping[str, Any],
        *,
        sampler: Sampler | None = None,
        sampler_name: str = "",
        limits: SpanLimits | None = None,
    ) -> None:
        if sampler is None:
            sampler_name, sampler = sampler_from_env()
        self.processor = processor
        self.resource = dict(resource)
        self.sampler = sampler
        self.sampler_name = sampler_name
        self.limits = limits if limits is not None else SpanLimits()
        self._tracers: dict[tuple[str, str | None, str | None], LeanTracer] = {}

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace.Tracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = self._tracers.get(key) if not attributes else None
        if tracer is None:
            scope = Scope(
                instrumenting_module_name or "",
                instrumenting_library_version,
                schema_url,
                attributes,
            )
            tracer = LeanTracer(self, scope)
            if not attributes:
                self._tracers[key] = tracer
        return tracer

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush_pending()  # request spans still waiting for the end of their event-loop turn
        return self.processor.force_flush(timeout_millis / 1000.0)

    def shutdown(self) -> None:
        flush_pending()
        self.processor.shutdown()
