"""Spans and log records as plain values that ``marshal`` carries to the export process, and back.

The export process (:mod:`otel_flash.telemetry.export_process`) encodes and sends what
the worker's export queues hold. With it, a queued item is a tuple of ints, strings,
tuples and dicts, made as the item is queued: :func:`flat_span` and :func:`flat_record`
make one in a few hundred nanoseconds, while the span or record is still in the
caches, and the queue then holds nothing the garbage collector walks. ``marshal``
writes a batch of them in C, and :func:`rebuilt_span` / :func:`rebuilt_record` give the
export process (or the worker, when it exports a batch itself) the SDK objects the
redactor and encoder read. What a collector receives from a rebuilt item is byte for
byte what it receives from the original (``tests/test_export_process.py`` pins it).

Resources and scopes are sent once each: :class:`Owners` numbers them on the worker's
side and :class:`OwnerTable` keeps them on the other.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord, ReadWriteLogRecord
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

from otel_flash.capture.records import NO_CONTEXT
from otel_flash.telemetry.sdk import READABLE_SPAN_FIELDS, known_span_context
from otel_flash.telemetry.span_data import UNSET, EncodableSpan, SpanData, plain_attributes, span_data

__all__ = [
    "OWNERS_LIMIT",
    "OwnerLookup",
    "OwnerTable",
    "Owners",
    "flat_record",
    "flat_span",
    "flattened",
    "rebuilt",
    "rebuilt_record",
    "rebuilt_span",
]

OWNERS_LIMIT = 1024
"""Resources and scopes numbered at most; items of others are exported by the worker itself."""
_KINDS = list(SpanKind)
_CODES = list(StatusCode)
_SEVERITIES = {number.value: number for number in SeverityNumber}
_FLAGS = {flags: TraceFlags(flags) for flags in range(256)}


class Owners:
    """Numbers the resources and scopes of items bound for the export process (the worker's side).

    Items are made flat as they are queued, in any thread: :meth:`pair` numbers an
    item's owners (taking a lock only for one it has not seen). Each owner is described
    to the process once, in the first message after it was numbered (:meth:`take_new`);
    :attr:`owners` holds each at its number, so the worker can rebuild items too. Past
    :data:`OWNERS_LIMIT` owners, a new one is not numbered: items carry the object
    itself, which ``marshal`` refuses, so their batch is exported by the worker.
    """

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}
        self.owners: list[Any] = [None]  # at 0: no scope; each owner kept alive, its id stays its own
        self._described = 1  # owners[1:_described] were described to the current process
        self._restart = False
        self._pairs: dict[int, tuple[object, tuple[Any, Any]]] = {}  # by scope: its resource, both numbers
        self._lock = threading.Lock()

    def pair(self, resource: Resource, scope: InstrumentationScope | None) -> tuple[Any, Any]:
        """The numbers of an item's resource and scope (one lookup once the pair is known)."""
        known = self._pairs.get(id(scope))
        if known is not None and known[0] is resource:
            return known[1]
        numbers = self._numbers
        found = numbers.get(id(resource)), numbers.get(id(scope)) if scope is not None else 0
        if found[0] is None or found[1] is None:
            with self._lock:
                found = self._number(resource), self._number(scope)
        if type(found[1]) is int:  # a numbered scope stays alive in owners: its id stays its own
            self._pairs[id(scope)] = (resource, found)
        return found

    def _number(self, owner: Resource | InstrumentationScope | None) -> Any:
        if owner is None:
            return 0
        found = self._numbers.get(id(owner))
        if found is not None:
            return found
        if len(self.owners) > OWNERS_LIMIT:
            return owner
        self._numbers[id(owner)] = number = len(self.owners)
        self.owners.append(owner)
        return number

    def take_new(self) -> tuple[bool, list[tuple[Any, ...]]]:
        """Whether the process must forget what it was told, and the owners to describe to it now."""
        with self._lock:
            upto = len(self.owners)
            new = [_described(number, self.owners[number]) for number in range(self._described, upto)]
            restart, self._described, self._restart = self._restart, upto, False
        return restart, new

    def describe_again(self) -> None:
        """A new process knows no owner: describe every one again, from the next message on."""
        with self._lock:
            self._described, self._restart = 1, True

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held by another thread)."""
        self._lock = threading.Lock()


def _described(number: int, owner: Resource | InstrumentationScope) -> tuple[Any, ...]:
    if isinstance(owner, Resource):
        return (number, 0, _attributes(owner.attributes), owner.schema_url)
    return (number, 1, owner.name, owner.version, owner.schema_url, _attributes(owner.attributes))


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


class OwnerLookup(Protocol):
    """Owners by number: :class:`Owners` (the worker's) or :class:`OwnerTable` (the process's)."""

    owners: list[Any]


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


def rebuilt_span(flat: Sequence[Any], owners: OwnerLookup) -> ReadableSpan:
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
            known_span_context(trace_id, span_id, False, _FLAGS[flags], trace_state),
            known_span_context(parent[0], parent[1], parent[2], _FLAGS[0], DEFAULT_TRACE_STATE)
            if parent
            else None,
            name,
            _KINDS[kind],
            start,
            end,
            _bounded(attributes, dropped_attributes) if dropped_attributes else attributes,
            [_rebuilt_event(event) for event in events] if events else (),
            UNSET if status is None else Status(_CODES[status[0]], status[1]),
            known[resource] if type(resource) is int else resource,
            known[scope] if type(scope) is int else scope,
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


def flat_record(record: ReadableLogRecord | ReadWriteLogRecord, owners: Owners) -> tuple[Any, ...]:
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
        owners.pair(record.resource or _default_resource(), record.instrumentation_scope),
    )


@functools.cache
def _default_resource() -> Resource:
    """What a record without a resource is exported with (as the SDK's batch processor does)."""
    return Resource.create({})


def rebuilt_record(flat: Sequence[Any], owners: OwnerLookup) -> ReadableLogRecord:
    """The log record :func:`flat_record` made ``flat`` of."""
    timestamp, observed, trace_id, span_id, flags, severity, text, body, attributes, dropped = flat[:10]
    log = LogRecord.__new__(LogRecord)  # its __init__ would read the current context
    log.timestamp, log.observed_timestamp = timestamp, observed
    log.context = NO_CONTEXT  # the context it was emitted in stayed in the worker
    log.trace_id, log.span_id = trace_id, span_id
    log.trace_flags = _FLAGS[flags]
    log.severity_text = text
    log.severity_number = _SEVERITIES[severity] if severity is not None else None
    log.body = body
    log.attributes = _bounded(attributes, dropped)
    log.event_name = flat[10]
    log.exception = None
    resource, scope = flat[11]
    known = owners.owners
    return ReadableLogRecord(
        log,
        known[resource] if type(resource) is int else resource,
        known[scope] if type(scope) is int else scope,
    )


def flattened(kind: str, items: Sequence[Any], owners: Owners) -> list[tuple[Any, ...]]:
    """``items`` made flat: spans when ``kind`` is ``"spans"``, else log records."""
    if kind == "spans":
        return [flat_span(item, owners) for item in items]
    return [flat_record(item, owners) for item in items]


def rebuilt(kind: str, flat: Sequence[Sequence[Any]], owners: OwnerLookup) -> list[Any]:
    """The SDK spans (``kind`` ``"spans"``) or log records that :func:`flattened` made ``flat`` of."""
    if kind == "spans":
        return [rebuilt_span(item, owners) for item in flat]
    return [rebuilt_record(item, owners) for item in flat]
