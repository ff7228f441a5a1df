"""Spans and log records as plain values that ``marshal`` carries to the export process, and back.

The export process (:mod:`otel_flash.telemetry.export_process`) encodes and sends what
the worker's export queues hand it. Between the two, an item is a tuple of ints,
strings, tuples and dicts: :func:`flat_span` and :func:`flat_record` make one in a
few hundred nanoseconds, ``marshal`` writes a batch of them in C, and
:func:`rebuilt_span` / :func:`rebuilt_record` give the export process the SDK objects
its redactor and encoder read. What a collector receives from a rebuilt item is byte
for byte what it receives from the original (``tests/test_export_process.py`` pins it).

Resources and scopes are sent once each: :class:`Owners` numbers them on the worker's
side and :class:`OwnerTable` keeps them on the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.span import TraceState

from otel_flash.telemetry.sdk import READABLE_SPAN_FIELDS
from otel_flash.telemetry.span_data import UNSET, EncodableSpan, SpanData, plain_attributes, span_data

__all__ = ["OwnerTable", "Owners", "flat_record", "flat_span", "rebuilt_record", "rebuilt_span"]

_OWNERS_LIMIT = 1024  # distinct resources and scopes numbered before both sides start over
_KINDS = list(SpanKind)
_CODES = list(StatusCode)
_SEVERITIES = {number.value: number for number in SeverityNumber}
_FLAGS = {flags: TraceFlags(flags) for flags in range(256)}
_NO_CONTEXT = Context()  # a rebuilt record's: the context it was emitted in stayed in the worker


class Owners:
    """Numbers the resources and scopes of items sent to the export process (the worker's side).

    Each one is described once, in the message that first carries an item of it
    (:meth:`take_new`); later items carry its number. Not thread-safe: one message is
    made at a time.
    """

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}
        self._kept: list[object] = []  # holding each numbered object: its id stays its own
        self._new: list[tuple[Any, ...]] = []
        self._last: tuple[object, object, int, int] = (None, None, 0, 0)
        self.restart = False

    def pair(self, resource: Resource, scope: InstrumentationScope | None) -> tuple[int, int]:
        """The numbers of an item's resource and scope (those of the item before, at once)."""
        last = self._last
        if resource is last[0] and scope is last[1]:
            return last[2], last[3]
        numbers = self.number(resource), self.number(scope)
        self._last = (resource, scope, *numbers)
        return numbers

    def number(self, owner: Resource | InstrumentationScope | None) -> int:
        """The number of ``owner`` (0 for no scope), described in the next message if new."""
        if owner is None:
            return 0
        found = self._numbers.get(id(owner))
        if found is not None:
            return found
        found = self._numbers[id(owner)] = len(self._kept) + 1
        self._kept.append(owner)
        if isinstance(owner, Resource):
            self._new.append((found, 0, _attributes(owner.attributes), owner.schema_url))
        else:
            self._new.append(
                (found, 1, owner.name, owner.version, owner.schema_url, _attributes(owner.attributes))
            )
        return found

    def take_new(self) -> tuple[bool, list[tuple[Any, ...]]]:
        """Whether the other side must start over, and the owners described since the last call."""
        restart, new = self.restart, self._new
        self.restart, self._new = False, []
        if len(self._kept) >= _OWNERS_LIMIT:
            self.forget()  # the next message starts over (never one under way: its items use the numbers)
        return restart, new

    def forget(self) -> None:
        """Start over (both sides): after a message that was never sent, or past the limit."""
        self._last = (None, None, 0, 0)
        self._numbers.clear()
        self._kept.clear()
        self._new.clear()
        self.restart = True


class OwnerTable:
    """The resources and scopes numbered by :class:`Owners`, rebuilt (the export process's side).

    :attr:`owners` holds each at its number; at 0, None (no scope).
    """

    def __init__(self) -> None:
        self.owners: list[Any] = [None]

    def learn(self, restart: bool, new: Sequence[tuple[Any, ...]]) -> None:
        """Take a message's descriptions of owners."""
        if restart:
            del self.owners[1:]
        for described in new:
            number, kind = described[0], described[1]
            if kind == 0:
                owner: Any = Resource(described[2] or {}, described[3])
            else:
                owner = InstrumentationScope(described[2], described[3], described[4], described[5])
            del self.owners[number:]
            self.owners.append(owner)


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return plain_attributes(attributes) if attributes else None


def flat_span(span: ReadableSpan, owners: Owners) -> tuple[Any, ...]:
    """``span`` as plain values (its owners numbered by ``owners``)."""
    data = span_data(span)
    context, parent, name, kind, start, end, attributes, events, status, resource, scope = data[:11]
    links, dropped_attributes, dropped_events, dropped_links = data[11:]
    trace_id, span_id, _, flags, trace_state, _ = context  # a SpanContext is this tuple
    return (
        trace_id,
        span_id,
        int(flags),
        tuple(trace_state.items()) if trace_state is not DEFAULT_TRACE_STATE and trace_state else None,
        (parent[0], parent[1], parent[2]) if parent is not None else None,
        name,
        kind._value_,
        start,
        end,
        (attributes if type(attributes) is dict else plain_attributes(attributes)) if attributes else None,
        tuple([_flat_event(event) for event in events]) if events else None,
        None if status is UNSET else (status.status_code._value_, status.description),
        owners.pair(resource, scope),
        tuple([_flat_link(link) for link in links]) if links else None,
        dropped_attributes,
        dropped_events,
        dropped_links,
    )


def _flat_event(event: Event) -> tuple[Any, ...]:
    return (event.name, event.timestamp, _attributes(event.attributes), event.dropped_attributes)


def _flat_link(link: Link) -> tuple[Any, ...]:
    context = link.context
    attributes = _attributes(link.attributes)
    return (context.trace_id, context.span_id, context.is_remote, attributes, link.dropped_attributes)


class _RebuiltSpan(EncodableSpan):
    """A span rebuilt in the export process: an SDK ``ReadableSpan`` carrying its :class:`SpanData`.

    The encoder and the redactor's scan read only :attr:`data`; the ``ReadableSpan``
    fields (read by the redactor when a span must change, or by another exporter) are
    filled from it on first use.
    """

    __slots__ = READABLE_SPAN_FIELDS

    def __getattr__(self, name: str) -> Any:
        index = _FIELD_INDEX.get(name)
        if index is None:
            raise AttributeError(name)
        data = self.data
        for field, at in _FIELD_INDEX.items():
            setattr(self, field, data[at] if at >= 0 else None)
        return data[index] if index >= 0 else None


_FIELD_INDEX = {  # a ReadableSpan field, and where SpanData keeps it (-1: not at all)
    "_context": 0,
    "_parent": 1,
    "_name": 2,
    "_kind": 3,
    "_start_time": 4,
    "_end_time": 5,
    "_attributes": 6,
    "_events": 7,
    "_status": 8,
    "_resource": 9,
    "_instrumentation_scope": 10,
    "_links": 11,
    "_instrumentation_info": -1,
}


def rebuilt_span(flat: Sequence[Any], owners: OwnerTable) -> ReadableSpan:
    """The span :func:`flat_span` made ``flat`` of.

    Its ``SpanContext`` s are built as the tuples they are, without the API's checks
    (the ids were valid when the worker sent them); a parent's flags and trace state are
    not carried (OTLP has no field for them).
    """
    (trace_id, span_id, flags, state, parent, name, kind, start, end, attributes, events, status) = flat[:12]
    (resource, scope), links, dropped_attributes, dropped_events, dropped_links = flat[12:]
    known = owners.owners
    trace_state = TraceState(list(state)) if state else DEFAULT_TRACE_STATE
    span = _RebuiltSpan.__new__(_RebuiltSpan)
    span.data = tuple.__new__(  # SpanData's own __new__ is a Python call
        SpanData,
        (
            tuple.__new__(SpanContext, (trace_id, span_id, False, _FLAGS[flags], trace_state, True)),
            tuple.__new__(SpanContext, (*parent, _FLAGS[0], DEFAULT_TRACE_STATE, True)) if parent else None,
            name,
            _KINDS[kind],
            start,
            end,
            _bounded(attributes, dropped_attributes) if dropped_attributes else attributes,
            [_rebuilt_event(event) for event in events] if events else (),
            UNSET if status is None else Status(_CODES[status[0]], status[1]),
            known[resource],
            known[scope],
            [_rebuilt_link(link) for link in links] if links else (),
            dropped_attributes,
            dropped_events,
            dropped_links,
        ),
    )
    return span


def _bounded(attributes: dict[str, Any] | None, dropped: int) -> Mapping[str, Any] | None:
    """Attributes as given, or in a bounded map that says how many were dropped."""
    if not dropped:
        return attributes
    bounded = BoundedAttributes(attributes=attributes or {}, immutable=False)
    bounded.dropped = dropped
    return bounded


def _rebuilt_event(flat: Sequence[Any]) -> Event:
    name, timestamp, attributes, dropped = flat
    event = Event(name, _bounded(attributes, dropped), timestamp)
    return event


def _rebuilt_link(flat: Sequence[Any]) -> Link:
    trace_id, span_id, remote, attributes, dropped = flat
    return Link(SpanContext(trace_id, span_id, remote), _bounded(attributes, dropped))


def flat_record(record: ReadableLogRecord, owners: Owners) -> tuple[Any, ...]:
    """``record`` as plain values (its owners numbered by ``owners``)."""
    log = record.log_record
    attributes = log.attributes
    dropped = record.dropped_attributes if type(attributes) is not dict else 0
    flags, severity = log.trace_flags, log.severity_number
    return (
        log.timestamp,
        log.observed_timestamp,
        log.trace_id,
        log.span_id,
        int(flags) if flags is not None else 0,
        severity.value if severity is not None else None,
        log.severity_text,
        log.body,
        (attributes if type(attributes) is dict else plain_attributes(attributes)) if attributes else None,
        dropped,
        log.event_name,
        owners.pair(record.resource, record.instrumentation_scope),
    )


def rebuilt_record(flat: Sequence[Any], owners: OwnerTable) -> ReadableLogRecord:
    """The log record :func:`flat_record` made ``flat`` of."""
    timestamp, observed, trace_id, span_id, flags, severity, text, body, attributes, dropped = flat[:10]
    log = LogRecord.__new__(LogRecord)  # its __init__ would read the current context
    log.timestamp, log.observed_timestamp = timestamp, observed
    log.context = _NO_CONTEXT
    log.trace_id, log.span_id = trace_id, span_id
    log.trace_flags = _FLAGS[flags]
    log.severity_text = text
    log.severity_number = _SEVERITIES[severity] if severity is not None else None
    log.body = body
    log.attributes = _bounded(attributes, dropped)
    log.event_name = flat[10]
    log.exception = None
    resource, scope = flat[11]
    return ReadableLogRecord(log, owners.owners[resource], owners.owners[scope])
