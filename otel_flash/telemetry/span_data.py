"""A span's exported fields in one tuple, and the SDK span that carries them.

Reading an SDK ``ReadableSpan`` field by field costs a property call each (and its
``attributes``, ``events`` and ``links`` build a proxy or a tuple every time): ~2 µs
per span. The OTLP encoder (:mod:`otel_flash.telemetry.otlp_encoding`) and the
redacting exporter read :func:`span_data` instead, which an :class:`EncodableSpan`
(a light span of :mod:`otel_flash.telemetry.spans`, once ended) answers at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

__all__ = ["UNSET", "EncodableSpan", "SpanData", "plain_attributes", "span_data"]

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
    """An SDK span that also carries its :class:`SpanData` (a light span, once it has ended).

    Subclasses set :attr:`data`; otel_flash's encoder and redactor read it instead of
    the ``ReadableSpan`` properties.
    """

    __slots__ = ("data",)
    data: SpanData


def span_data(span: ReadableSpan) -> SpanData:
    """What the encoder reads of ``span``: its own :class:`SpanData` if it has one, else read now."""
    if isinstance(span, EncodableSpan):
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


def plain_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` as a plain dict: itself if it is one, else its copy (the SDK's maps are
    slow to walk; their ``copy`` is a plain dict)."""
    if type(attributes) is dict:
        return attributes
    copy = getattr(attributes, "copy", None)
    copied = copy() if copy is not None else None
    return copied if isinstance(copied, dict) else dict(attributes)
