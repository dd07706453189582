"""OTLP trace export requests written straight to protobuf wire format.

Building the generated protobuf messages costs about 30 µs per span in the OpenTelemetry
exporter (one message object per attribute), more than the request the span describes; writing
the bytes directly costs a few µs. Only what ``ExportTraceServiceRequest`` needs is here, field
numbers from ``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``;
``tests/common/test_otlp_proto.py`` decodes the output with the official generated classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

__all__ = [
    "FinishedSpan",
    "encode_attributes",
    "encode_request",
    "encode_resource",
    "encode_scope",
    "encode_span",
]

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# Span.flags: the parent's is_remote is known (bit 8), and it is remote (bit 9).
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((n,)) for n in range(0x80)]

# Span.kind (field 6): the API's SpanKind (INTERNAL = 0) is one below OTLP's (INTERNAL = 1).
_KINDS = {kind: b"\x30" + _SMALL[kind.value + 1] for kind in SpanKind}
_SERVER = _KINDS[SpanKind.SERVER]
_STATUS_UNSET = StatusCode.UNSET


def _len(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:  # two bytes: a span body, usually
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    return _varint(n)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited field (``tag`` is the already-shifted key byte)."""
    return bytes((tag,)) + _len(data) + data


def _string(tag: int, value: str) -> bytes:
    return _field(tag, value.encode("utf-8", "surrogatepass"))


# AnyValue: string 1, bool 2, int 3, double 4, array 5, kvlist 6, bytes 7.
def _any_value(value: Any) -> bytes:
    kind = type(value)
    if kind is str:
        return _string(0x0A, value)
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + _pack_double(value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _string(0x0A, str(value))
    if isinstance(value, int):
        return b"\x18" + _varint(int(value) & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_double(float(value))
    if isinstance(value, (bytes, bytearray)):
        return _field(0x3A, bytes(value))
    if isinstance(value, Mapping):
        return _field(0x32, b"".join(_field(0x0A, _key_value(k, v)) for k, v in value.items()))
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _any_value(v)) for v in value))
    return _string(0x0A, str(value))


_KEYS: dict[str, bytes] = {}


def _key_value(key: str, value: Any) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _string(0x0A, key)
        if len(_KEYS) < 4096:  # attribute keys are a small fixed set; never grow unbounded
            _KEYS[key] = encoded
    return encoded + _field(0x12, _any_value(value))


# Whole ``Span.attributes`` fields for the (key, value) pairs that repeat from span to span
# (method, route, status code...): most attributes of a span are then one dict lookup.
_SPAN_ATTRIBUTES: dict[tuple[str, Any], bytes] = {}
_SPAN_ATTRIBUTES_MAX = 8192
_CACHED_VALUE_MAX = 256


def _span_attributes(attributes: Mapping[str, Any]) -> bytes:
    cache = _SPAN_ATTRIBUTES
    out = []
    for key, value in attributes.items():
        kind = type(value)
        # Never bool or float (True == 1 == 1.0 as dict keys), nor long strings: the cache
        # stays small (at most 8192 short entries) whatever paths clients send.
        if kind is int or (kind is str and len(value) <= _CACHED_VALUE_MAX):
            encoded = cache.get((key, value))
            if encoded is None:
                encoded = _field(0x4A, _key_value(key, value))
                if len(cache) >= _SPAN_ATTRIBUTES_MAX:
                    cache.clear()  # bounded whatever values clients send
                cache[(key, value)] = encoded
            out.append(encoded)
        else:
            out.append(_field(0x4A, _key_value(key, value)))
    return b"".join(out)


def encode_attributes(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a ``KeyValue`` field with key byte ``tag``."""
    if not attributes:
        return b""
    return b"".join(_field(tag, _key_value(k, v)) for k, v in attributes.items())


def encode_resource(attributes: Mapping[str, Any]) -> bytes:
    """A ``Resource`` message body."""
    return encode_attributes(0x0A, attributes)


def encode_scope(name: str, version: str | None, attributes: Mapping[str, Any] | None) -> bytes:
    """An ``InstrumentationScope`` message body."""
    out = _string(0x0A, name)
    if version:
        out += _string(0x12, version)
    return out + encode_attributes(0x1A, attributes)


class FinishedSpan(Protocol):
    """What :func:`encode_span` reads (:class:`ef_common.spans.LeanSpan` has it)."""

    @property
    def trace_id(self) -> int: ...
    @property
    def span_id(self) -> int: ...
    @property
    def trace_state(self) -> TraceState: ...
    @property
    def parent_id(self) -> int | None: ...
    @property
    def parent_is_remote(self) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> Any: ...  # opentelemetry.trace.SpanKind
    @property
    def start_time(self) -> int: ...
    @property
    def end_time(self) -> int | None: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...
    @property
    def dropped_attributes(self) -> int: ...
    @property
    def events(self) -> Sequence[tuple[str, int, Mapping[str, Any] | None]]: ...
    @property
    def dropped_events(self) -> int: ...
    @property
    def links(self) -> Sequence[Any]: ...  # opentelemetry.trace.Link
    @property
    def dropped_links(self) -> int: ...
    @property
    def status_code(self) -> Any: ...  # opentelemetry.trace.StatusCode
    @property
    def status_description(self) -> str | None: ...


def _link(link: Any) -> bytes:
    context = link.context
    body = [b"\x0a\x10", context.trace_id.to_bytes(16, "big")]
    body += [b"\x12\x08", context.span_id.to_bytes(8, "big")]
    state = context.trace_state.to_header()
    if state:
        body.append(_string(0x1A, state))
    body.append(encode_attributes(0x22, link.attributes))
    dropped = getattr(link, "dropped_attributes", 0)
    if dropped:
        body.append(b"\x28" + _varint(dropped))
    flags = FLAG_HAS_IS_REMOTE | (FLAG_IS_REMOTE if context.is_remote else 0)
    body.append(b"\x35" + _pack_fixed32(flags))
    return _field(0x6A, b"".join(body))


# OTLP Span.flags (fixed32, field 16) for a local and a remote parent.
_LOCAL_PARENT = b"\x85\x01" + _pack_fixed32(FLAG_HAS_IS_REMOTE)
_REMOTE_PARENT = b"\x85\x01" + _pack_fixed32(FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE)
_UNSET_LOCAL_PARENT = b"\x7a\x00" + _LOCAL_PARENT
_UNSET_REMOTE_PARENT = b"\x7a\x00" + _REMOTE_PARENT


# Span.trace_id (field 1) and span_id (field 2) in one pack; start and end times (fixed64 fields
# 7 and 8) in another.
_IDS = struct.Struct(">BBQQBBQ")
_TIMES = struct.Struct("<BQBQ")
_MASK_64 = 0xFFFFFFFFFFFFFFFF
# Span.name fields by name: request spans repeat a few names ("GET /health/live").
_NAMES: dict[str, bytes] = {}
_NAMES_MAX = 4096


def encode_span(span: FinishedSpan) -> bytes:
    """A ``Span`` message body.

    The API's ``SpanKind`` (INTERNAL = 0) is one below OTLP's (INTERNAL = 1); ``StatusCode``
    values are OTLP's.
    """
    trace_id = span.trace_id
    parts = [_IDS.pack(0x0A, 0x10, trace_id >> 64, trace_id & _MASK_64, 0x12, 0x08, span.span_id)]
    trace_state = span.trace_state
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        parts.append(_string(0x1A, trace_state.to_header()))
    parent = span.parent_id
    if parent:
        parts.append(b"\x22\x08" + parent.to_bytes(8, "big"))
    name = span.name
    encoded_name = _NAMES.get(name)
    if encoded_name is None:
        encoded_name = _string(0x2A, name)
        if len(name) <= _CACHED_VALUE_MAX:  # bounded whatever names spans get
            if len(_NAMES) >= _NAMES_MAX:
                _NAMES.clear()
            _NAMES[name] = encoded_name
    parts.append(encoded_name)
    kind = span.kind
    parts.append(_SERVER if kind is SpanKind.SERVER else _KINDS[kind])  # enum hashing is slow
    start = span.start_time
    end = span.end_time
    parts.append(_TIMES.pack(0x39, start, 0x41, end if end is not None else start))
    if span.attributes:
        parts.append(_span_attributes(span.attributes))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    if span.events:
        for event_name, timestamp, event_attributes in span.events:
            body = b"\x09" + _pack_fixed64(timestamp) + _string(0x12, event_name)
            body += encode_attributes(0x1A, event_attributes)
            parts.append(_field(0x5A, body))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    if span.links:
        for link in span.links:
            parts.append(_link(link))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status_code = span.status_code
    if status_code is not _STATUS_UNSET or span.status_description:
        code = status_code.value
        status = b"\x18" + _SMALL[code] if code else b""
        if span.status_description:
            status = _string(0x12, span.status_description) + status
        parts.append(_field(0x7A, status))
        parts.append(_REMOTE_PARENT if span.parent_is_remote else _LOCAL_PARENT)
    else:  # an empty Status, present as in the SDK's encoding, then the flags
        parts.append(_UNSET_REMOTE_PARENT if span.parent_is_remote else _UNSET_LOCAL_PARENT)
    return b"".join(parts)


def encode_request(resource: bytes, scopes: Iterable[tuple[bytes, Sequence[bytes]]]) -> bytes:
    """An ``ExportTraceServiceRequest`` with one resource and its spans grouped by scope.

    ``resource`` is an encoded ``Resource`` body; ``scopes`` pairs each encoded
    ``InstrumentationScope`` body with its encoded ``Span`` bodies.
    """
    scope_spans = []
    for scope, spans in scopes:
        body = [_field(0x0A, scope)]
        append = body.append
        for span in spans:  # each span's key and length, then the span: copied once, by join
            append(b"\x12" + _len(span))
            append(span)
        scope_spans.append(_field(0x12, b"".join(body)))
    resource_spans = _field(0x0A, resource) + b"".join(scope_spans)
    return _field(0x0A, resource_spans)
