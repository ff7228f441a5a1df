"""OTLP protobuf encoding of spans and log records, written straight to wire bytes.

The stock encoders (``opentelemetry.exporter.otlp.proto.common``) build an
``opentelemetry-proto`` message object per span, attribute and value and then
serialize it: 15-20 µs per span. :class:`SpanEncoder` and :class:`LogEncoder`
write the same request's bytes directly (varints, length-delimited fields,
fixed64 times), and keep the encoding of each resource, scope and attribute key
they have seen, so a span costs a few µs.

What a collector decodes is exactly what the stock encoders produce:
``ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans)) == encode_spans(spans)``,
and the same for log records (``tests/test_otlp_encoding.py`` pins it). That
includes the grouping (by equal resource, then equal scope, in first-seen order),
the values of every type, and what is skipped: an attribute whose value cannot be
encoded (an unknown type, an integer outside int64) is left out and reported on
``flash.internal``, as the stock encoder logs and leaves it out.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE

from otel_flash._internal import internal_logger
from otel_flash.telemetry.span_data import UNSET, SpanData, plain_attributes, span_data

__all__ = ["LogEncoder", "SpanEncoder"]

_M64 = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_BYTES = [bytes([n]) for n in range(128)]
_IDS = struct.Struct(">BBQQBBQ")  # trace_id (16 bytes: two big-endian halves) and span_id fields
_TRACE_ID = struct.Struct(">BBQQ")  # a trace_id field
_SPAN_ID = struct.Struct(">BBQ")  # a span_id field
_TIMES = struct.Struct("<BQBQ")  # two fixed64 fields (start and end, time and observed)
_TIME = struct.Struct("<BQ")
_FLAGS = struct.Struct("<BBI")  # span.flags: field 16, fixed32 (a two-byte tag)
_FIXED32 = struct.Struct("<BI")
_DOUBLE = struct.Struct("<Bd")
_CACHE_LIMIT = 4096  # distinct keys, attributes, names, resources or scopes kept encoded before starting over
_KEPT_TEXT = 64  # the longest text attribute value kept encoded
_KEPT_INT = 1 << 16  # integer attribute values kept encoded: from -_KEPT_INT to _KEPT_INT, exclusive

# Span.flags: the parent's (or link's) is_remote is known, and whether it is remote.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_LOCAL_PARENT = _FLAGS.pack(0x85, 0x01, _HAS_IS_REMOTE)
_REMOTE_PARENT = _FLAGS.pack(0x85, 0x01, _HAS_IS_REMOTE | _IS_REMOTE)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTES[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag``, the payload's length, the payload."""
    size = len(payload)
    return tag + (_BYTES[size] if size < 0x80 else _varint(size)) + payload


def _text(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode())


class _ValueError(Exception):
    """A value the stock encoder would refuse too."""


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message, with the stock encoder's order of type checks."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _int64(value)
    if kind is float:
        return _DOUBLE.pack(0x21, value)
    return _other_value(value)


def _other_value(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", str.encode(value))
    if isinstance(value, int):
        return b"\x18" + _int64(int(value))
    if isinstance(value, float):
        return _DOUBLE.pack(0x21, value)
    if isinstance(value, bytes):
        return _field(b"\x3a", bytes(value))
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(item)) for item in value]))
    if isinstance(value, Mapping):
        pairs = [_field(b"\x0a", _key_value(str(key), item)) for key, item in value.items()]
        return _field(b"\x32", b"".join(pairs))
    msg = f"Invalid type {type(value)} of value {value}"
    raise _ValueError(msg)


def _int64(value: int) -> bytes:
    if value < 0:
        if value < _INT64_MIN:
            msg = f"Value out of range: {value}"
            raise _ValueError(msg)
        return _varint(value + (1 << 64))
    if value > _INT64_MAX:
        msg = f"Value out of range: {value}"
        raise _ValueError(msg)
    return _BYTES[value] if value < 0x80 else _varint(value)


def _key_value(key: str, value: Any) -> bytes:
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


class _Attributes:
    """Encodes attribute maps as repeated ``KeyValue`` fields, keeping the encoding of each key and,
    field tag included, of each short text, boolean or small integer attribute (most repeat)."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        # per tag: (key, value) -> the whole field; integers apart (True == 1 in a dict key)
        self._pairs: dict[bytes, dict[tuple[str, str | bool], bytes]] = {}
        self._ints: dict[bytes, dict[tuple[str, int], bytes]] = {}
        self._kept = 0

    def fields(self, tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
        """One ``tag`` field per attribute that can be encoded."""
        if not attributes:
            return []
        pairs = self._pairs.get(tag) or self._pairs.setdefault(tag, {})
        ints = self._ints.get(tag) or self._ints.setdefault(tag, {})
        out = []
        if type(attributes) is not dict:  # checked here too: most maps are plain, and this is per item
            attributes = plain_attributes(attributes)
        for key, value in attributes.items():
            kind = type(value)
            if kind is str or kind is bool:
                encoded = pairs.get((key, value))
                if encoded is None:
                    keep = kind is bool or len(value) <= _KEPT_TEXT
                    encoded = self._field(tag, key, value, pairs if keep else None)
            elif kind is int:
                encoded = ints.get((key, value))
                if encoded is None:
                    encoded = self._field(tag, key, value, ints if -_KEPT_INT < value < _KEPT_INT else None)
            else:
                encoded = self._field(tag, key, value, None)
            if encoded:
                out.append(encoded)
        return out

    def _field(self, tag: bytes, key: str, value: Any, keep: dict[Any, bytes] | None) -> bytes:
        """A ``tag`` field holding a ``KeyValue``, b"" when the stock encoder would leave it out."""
        try:
            encoded_key = self._keys.get(key) or self._key(key)
            body = encoded_key + _field(b"\x12", _any_value(value))
        except Exception as exc:  # as the stock encoder: the attribute is left out, the rest exported
            internal_logger().warning("telemetry: attribute %s not exported: %s", key, exc)
            return b""
        size = len(body)
        encoded = tag + (_BYTES[size] if size < 0x80 else _varint(size)) + body
        if keep is not None:
            if self._kept >= _CACHE_LIMIT:  # start over (the caller's per-tag maps are dropped with them)
                self._kept = 0
                self._pairs, self._ints = {}, {}
            self._kept += 1
            keep[(key, value)] = encoded
        return encoded

    def _key(self, key: str) -> bytes:
        if len(self._keys) >= _CACHE_LIMIT:
            self._keys.clear()
        encoded = self._keys[key] = _field(b"\x0a", key.encode())
        return encoded


_Item = TypeVar("_Item")


class _Kept(Generic[_Item]):
    """Encodings of resources or scopes by identity, each holding its object so the id stays unique."""

    def __init__(self, encode: Callable[[_Item], bytes]) -> None:
        self._encode = encode
        self._by_id: dict[int, tuple[_Item, bytes]] = {}

    def __call__(self, item: _Item) -> bytes:
        found = self._by_id.get(id(item))
        if found is not None:
            return found[1]
        if len(self._by_id) >= _CACHE_LIMIT:
            self._by_id.clear()
        encoded = self._encode(item)
        self._by_id[id(item)] = (item, encoded)
        return encoded


class _Request(Generic[_Item]):
    """A request of one signal: items grouped by equal resource, then equal scope, in first-seen order."""

    def __init__(self, attributes: _Attributes) -> None:
        self._attributes = attributes
        self._resources = _Kept[Resource](self._resource)
        self._scopes = _Kept[InstrumentationScope](self._scope)

    def encode(
        self, items: Iterable[_Item], item: Callable[[_Item], bytes], owner: Callable[[_Item], Any]
    ) -> bytes:
        """The request's bytes: ``item`` encodes one, ``owner`` gives its (resource, scope)."""
        groups: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
        by_id: dict[tuple[int, int], list[bytes]] = {}
        last_resource: object = None
        last_scope: object = None
        group: list[bytes] = []
        for one in items:
            resource, scope = owner(one)
            if resource is not last_resource or scope is not last_scope:  # else the group of the one before
                found = by_id.get((id(resource), id(scope)))
                if found is None:
                    found = groups.setdefault(resource, {}).setdefault(scope or None, [])
                    by_id[(id(resource), id(scope))] = found
                group, last_resource, last_scope = found, resource, scope
            encoded = item(one)
            size = len(encoded)
            group.append(b"\x12" + _BYTES[size] if size < 0x80 else b"\x12" + _varint(size))  # field head
            group.append(encoded)  # and body (joined with it later)
        return b"".join([_field(b"\x0a", self._resource_group(*group)) for group in groups.items()])

    def _resource_group(
        self, resource: Resource, scopes: dict[InstrumentationScope | None, list[bytes]]
    ) -> bytes:
        parts = [_field(b"\x0a", self._resources(resource))]
        for scope, items in scopes.items():
            scope_part = [_field(b"\x0a", self._scopes(scope) if scope is not None else b""), *items]
            if scope is not None and scope.schema_url:
                scope_part.append(_text(b"\x1a", scope.schema_url))
            parts.append(_field(b"\x12", b"".join(scope_part)))
        if resource.schema_url:
            parts.append(_text(b"\x1a", resource.schema_url))
        return b"".join(parts)

    def _resource(self, resource: Resource) -> bytes:
        return b"".join(self._attributes.fields(b"\x0a", resource.attributes))

    def _scope(self, scope: InstrumentationScope) -> bytes:
        parts = [_text(b"\x0a", scope.name)] if scope.name else []
        if scope.version:
            parts.append(_text(b"\x12", scope.version))
        parts.extend(self._attributes.fields(b"\x1a", scope.attributes))
        return b"".join(parts)


_UNSET_STATUS = b"\x7a\x00"  # Span.status, empty
_SPAN_KINDS = [_BYTES[0x30] + _BYTES[kind + 1] for kind in range(5)]  # SpanKind.INTERNAL (0) is OTLP's 1


class SpanEncoder:
    """Encodes SDK spans as the bytes of an ``ExportTraceServiceRequest`` (one per exporter)."""

    def __init__(self) -> None:
        self._attributes = _Attributes()
        self._request = _Request[SpanData](self._attributes)
        self._names: dict[str, bytes] = {}

    def _name(self, name: str) -> bytes:
        if len(self._names) >= _CACHE_LIMIT:
            self._names.clear()
        encoded = self._names[name] = _text(b"\x2a", name)
        return encoded

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The request carrying ``spans``."""
        return self._request.encode(map(span_data, spans), self._span, _SPAN_OWNER)

    def _span(self, span: SpanData) -> bytes:
        (context, parent, name, kind, start, end, attributes, events, status) = span[:9]
        trace_id, span_id, _, _, trace_state, _ = context  # a SpanContext is this tuple (see sdk)
        parts = [_IDS.pack(0x0A, 16, trace_id >> 64, trace_id & _M64, 0x12, 8, span_id)]
        if trace_state is not DEFAULT_TRACE_STATE and trace_state:
            state = ",".join([f"{key}={value}" for key, value in trace_state.items()])
            parts.append(_text(b"\x1a", state))
        if parent is not None:
            parts.append(_SPAN_ID.pack(0x22, 8, parent[1]))
        if name:
            parts.append(self._names.get(name) or self._name(name))
        parts.append(_SPAN_KINDS[kind._value_])  # an enum's value without its descriptor's Python call
        parts.append(_TIMES.pack(0x39, start, 0x41, end) if start and end else _times(0x39, start, 0x41, end))
        if attributes:
            parts += self._attributes.fields(b"\x4a", attributes)
        links, dropped_attributes, dropped_events, dropped_links = span[11:]
        if dropped_attributes:
            parts.append(b"\x50" + _varint(dropped_attributes))
        if events:
            parts += [_field(b"\x5a", self._event(event)) for event in events]
        if dropped_events:
            parts.append(b"\x60" + _varint(dropped_events))
        if links:
            parts += [_field(b"\x6a", self._link(link)) for link in links]
        if dropped_links:
            parts.append(b"\x70" + _varint(dropped_links))
        parts.append(_UNSET_STATUS if status is UNSET else _field(b"\x7a", _status(status)))
        parts.append(_REMOTE_PARENT if parent is not None and parent[2] else _LOCAL_PARENT)
        return b"".join(parts)

    def _event(self, event: Any) -> bytes:
        parts = [_TIME.pack(0x09, event.timestamp)] if event.timestamp else []
        if event.name:
            parts.append(_text(b"\x12", event.name))
        parts += self._attributes.fields(b"\x1a", event.attributes)
        if event.dropped_attributes:
            parts.append(b"\x20" + _varint(event.dropped_attributes))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        context = link.context
        trace_id = context.trace_id
        parts = [_IDS.pack(0x0A, 16, trace_id >> 64, trace_id & _M64, 0x12, 8, context.span_id)]
        parts += self._attributes.fields(b"\x22", link.attributes)
        if link.dropped_attributes:
            parts.append(b"\x28" + _varint(link.dropped_attributes))
        parts.append(_FIXED32.pack(0x35, _HAS_IS_REMOTE | (_IS_REMOTE if context.is_remote else 0)))
        return b"".join(parts)


_SPAN_OWNER = operator.itemgetter(9, 10)  # a SpanData's resource and scope


def _times(first_tag: int, first: int | None, second_tag: int, second: int | None) -> bytes:
    if first and second:
        return _TIMES.pack(first_tag, first, second_tag, second)
    if first:
        return _TIME.pack(first_tag, first)
    return _TIME.pack(second_tag, second) if second else b""


def _status(status: Any) -> bytes:
    code = status.status_code.value
    message = _text(b"\x12", status.description) if status.description else b""
    return message + b"\x18" + _BYTES[code] if code else message


class LogEncoder:
    """Encodes SDK log records as the bytes of an ``ExportLogsServiceRequest`` (one per exporter)."""

    def __init__(self) -> None:
        self._attributes = _Attributes()
        self._request = _Request[ReadableLogRecord](self._attributes)
        self._severities: dict[tuple[int, str | None], tuple[Any, bytes]] = {}

    def encode(self, records: Sequence[ReadableLogRecord]) -> bytes:
        """The request carrying ``records``; a body that cannot be encoded fails the batch, as stock."""
        try:
            return self._request.encode(records, self._record, _RECORD_OWNER)
        except _ValueError as exc:
            raise ValueError(str(exc)) from exc

    def _record(self, record: ReadableLogRecord) -> bytes:
        log = record.log_record
        timestamp, observed = log.timestamp, log.observed_timestamp
        number, text = log.severity_number, log.severity_text
        severity = self._severities.get((id(number), text))  # by identity: an enum's hash is a Python call
        parts = [
            _TIMES.pack(0x09, timestamp, 0x59, observed)
            if timestamp and observed
            else _times(0x09, timestamp, 0x59, observed),
            severity[1] if severity is not None else self._severity(number, text),
            _field(b"\x2a", _any_value(log.body)),
        ]
        attributes = log.attributes
        if attributes:
            parts += self._attributes.fields(b"\x32", attributes)
        if type(attributes) is not dict and record.dropped_attributes:  # a plain dict dropped nothing
            parts.append(b"\x38" + _varint(record.dropped_attributes))
        flags = int(log.trace_flags)  # as the stock encoder
        if flags:
            parts.append(_FIXED32.pack(0x45, flags))
        trace_id = log.trace_id
        if trace_id:
            parts.append(_TRACE_ID.pack(0x4A, 16, trace_id >> 64, trace_id & _M64))
        if log.span_id:
            parts.append(_SPAN_ID.pack(0x52, 8, log.span_id))
        if log.event_name:
            parts.append(_text(b"\x62", log.event_name))
        return b"".join(parts)

    def _severity(self, number: Any, text: str | None) -> bytes:
        value = getattr(number, "value", None)
        encoded = (b"\x10" + _varint(value) if value else b"") + (_text(b"\x1a", text) if text else b"")
        if len(self._severities) >= _CACHE_LIMIT:
            self._severities.clear()
        self._severities[(id(number), text)] = (number, encoded)  # holding ``number``: its id stays its own
        return encoded


_RECORD_OWNER = operator.attrgetter("resource", "instrumentation_scope")
