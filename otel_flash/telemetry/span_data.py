"""A span's exported fields in one tuple, and the SDK span a light span becomes when it ends.

Reading an SDK ``ReadableSpan`` field by field costs a property call each (and its
``attributes``, ``events`` and ``links`` build a proxy or a tuple every time): ~2 µs
per span. The OTLP encoder (:mod:`otel_flash.telemetry.otlp_encoding`) and the
redacting exporter read :func:`span_data` instead, which an :class:`EncodableSpan`
(what :mod:`otel_flash.telemetry.spans` hands to the export queues) answers at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

__all__ = ["UNSET", "EncodableSpan", "SpanData", "span_data"]

UNSET = Status(StatusCode.UNSET)
"""The status of every span nobody set one on (light spans share this object)."""


class SpanData(NamedTuple):
    """What the encoder reads of a span, in one tuple instead of a property call per field."""

    context: SpanContext
    parent: SpanContext | None
    name: str
    kind: SpanKind
    start_time: int | None
    end_time: int | None
    attributes: Mapping[str, Any] | None
    events: Sequence[Event]
    status: Status
    resource: Resource
    scope: InstrumentationScope | None
    links: Sequence[Link] = ()
    dropped_attributes: int = 0
    dropped_events: int = 0
    dropped_links: int = 0


class EncodableSpan(ReadableSpan):
    """An SDK span that also carries its :class:`SpanData` (what a light span becomes when it ends)."""

    def __init__(self, data: SpanData) -> None:
        context, parent, name, kind, start, end, attributes, events, status, resource, scope = data[:11]
        # positionally, in ReadableSpan's order: on every light span's way to the export queue
        super().__init__(
            name, context, parent, resource, attributes, events, (), kind, None, status, start, end, scope
        )
        self.data = data


def span_data(span: ReadableSpan) -> SpanData:
    """What the encoder reads of ``span``: its own :class:`SpanData` if it has one, else read now."""
    if type(span) is EncodableSpan:
        return span.data
    return SpanData(
        span.context,
        span.parent,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.attributes,
        span.events,
        span.status,
        span.resource,
        span.instrumentation_scope,
        span.links,
        span.dropped_attributes,
        span.dropped_events,
        span.dropped_links,
    )
