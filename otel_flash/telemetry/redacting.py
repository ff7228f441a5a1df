"""Exporter wrappers that redact every span and log record on its way out of the worker.

Redaction at the sources otel_flash owns (the logging bridge, the stdout capture,
the errors it records) cannot see what user code sets on spans itself: attributes,
events and status descriptions of the executor's ``flash.function.call`` or of the
user's own spans, log records emitted straight through the OpenTelemetry API, and
whatever a function process relays. These wrappers sit between the processors and
the exporters that otel_flash builds (:func:`otel_flash.telemetry.exporters.build_pipeline`),
so everything exported, in both isolation modes, passes a :class:`Redactor` last.

They cost little when nothing matches: each string is scanned once, and a span or
record with nothing to hide is handed on as the same object; only one that changes
is copied (``benchmarks/bench_redaction.py`` prints the per-span cost).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from copy import copy
from functools import partial
from typing import Any, TypeVar

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from otel_flash.redaction import Redactor
from otel_flash.telemetry.span_data import UNSET, plain_attributes, span_data
from otel_flash.telemetry.wrapping import WrappingExporter

_PLAIN = frozenset({bool, int, float, type(None)})
_FLAT = _PLAIN | {str}  # values whose strings are themselves
_T = TypeVar("_T")
__all__ = ["RedactingLogRecordExporter", "RedactingSpanExporter", "redact_log_record", "redact_span"]


def redact_span(span: ReadableSpan, redact: Redactor) -> ReadableSpan:
    """``span`` itself when nothing in it needs redacting, else a redacted copy.

    Looked at: the name, attributes, events (names and attributes), links' attributes
    and the status description.
    """
    texts = _span_texts(span)
    if texts is not None and redact.finds_nothing(texts):
        return span
    name = redact(span.name)
    attributes = redact.attributes(span.attributes)
    events = _events(span.events, redact)
    links = _links(span.links, redact)
    status = span.status
    if status.description and (described := redact(status.description)) is not status.description:
        status = Status(status.status_code, described)
    if (
        name is span.name
        and status is span.status
        and attributes is None
        and events is None
        and links is None
    ):
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes if attributes is not None else span.attributes,
        events=events if events is not None else span.events,
        links=links if links is not None else span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _span_texts(span: ReadableSpan) -> list[str] | None:
    """Every string of ``span`` when all its values are plain (no bytes, maps or nesting), else None."""
    data = span_data(span)  # one tuple, no properties
    name, attributes, events, status, links = data[2], data[6], data[7], data[8], data[11]
    texts = [name]
    if attributes and not _plain_texts(_values(attributes), texts):
        return None
    for event in events:  # loops, not comprehensions: most spans have no events and no links
        texts.append(event.name)
        if event.attributes and not _plain_texts(_values(event.attributes), texts):
            return None
    for link in links:
        if link.attributes and not _plain_texts(_values(link.attributes), texts):
            return None
    if status is not UNSET and status.description:
        texts.append(status.description)
    return texts


def _values(attributes: Mapping[str, object]) -> Collection[object]:
    """The values of an attribute map (a light span's own dict walked as it is)."""
    return attributes.values() if type(attributes) is dict else plain_attributes(attributes).values()


def _plain_texts(values: Collection[object], texts: list[str]) -> bool:
    """Add the strings of ``values`` (and of their tuples) to ``texts``; False if one is not plain."""
    kinds = set(map(type, values)) if len(values) > 8 else None  # a short loop is cheaper below
    if kinds is not None and kinds <= _FLAT:  # the common case, without a Python loop over the values
        if str in kinds:
            texts += [value for value in values if type(value) is str]
        return True
    for value in values:
        kind = type(value)
        if kind is str:
            texts.append(value)  # type: ignore[arg-type]  # kind is str
        elif kind is tuple or kind is list:
            if not _plain_texts(value, texts):  # type: ignore[arg-type]  # kind is a sequence
                return False
        elif kind not in _PLAIN:
            return False
    return True


def _events(events: Sequence[Event], redact: Redactor) -> list[Event] | None:
    changed: list[Event] | None = None
    for index, event in enumerate(events):
        name = redact(event.name)
        attributes = redact.attributes(event.attributes)
        if name is event.name and attributes is None:
            continue
        changed = changed if changed is not None else list(events)
        kept = attributes if attributes is not None else event.attributes
        changed[index] = Event(name, kept, event.timestamp)
    return changed


def _links(links: Sequence[Link], redact: Redactor) -> list[Link] | None:
    changed: list[Link] | None = None
    for index, link in enumerate(links):
        attributes = redact.attributes(link.attributes)
        if attributes is not None:
            changed = changed if changed is not None else list(links)
            changed[index] = Link(link.context, attributes)
    return changed


def redact_log_record(record: Any, redact: Redactor) -> Any:
    """``record`` (a readable or read-write SDK log record) itself, or a redacted copy.

    Looked at: the body (a string, bytes, or a list or map of them) and the attributes.
    """
    texts = _log_texts(record)
    if texts is not None and redact.finds_nothing(texts):
        return record
    log = record.log_record
    body = redact.value(log.body)
    attributes = redact.attributes(log.attributes)
    if body is log.body and attributes is None:
        return record
    changed = copy(log)
    changed.body = body
    if attributes is not None:
        changed.attributes = attributes
    return dataclasses.replace(record, log_record=changed)


def _log_texts(record: Any) -> list[str] | None:
    """Every string of ``record`` when its body and attributes are plain, else None."""
    log = record.log_record
    body, attributes = log.body, log.attributes
    texts: list[str] = [body] if type(body) is str else []
    if not texts and not _plain_texts((body,), texts):
        return None
    if attributes and not _plain_texts(_values(attributes), texts):
        return None
    return texts


def _redact_batch(
    items: Sequence[_T],
    texts: Callable[[_T], list[str] | None],
    redact_one: Callable[[_T], _T],
    redact: Redactor,
) -> Sequence[_T]:
    """``items`` themselves when no text of any needs redacting (one scan for the batch), else redacted."""
    found: list[str] = []
    for item in items:
        item_texts = texts(item)
        if item_texts is None:
            break
        found += item_texts
    else:
        if redact.finds_nothing(found):
            return items
    return [redact_one(item) for item in items]


class RedactingSpanExporter(WrappingExporter[SpanExporter], SpanExporter):
    """Hands ``exporter`` every span redacted by ``redact`` (unchanged spans as they are)."""

    def __init__(self, exporter: SpanExporter, redact: Redactor) -> None:
        self.exporter = exporter
        self._redact = redact

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Redact, then export."""
        redact = self._redact
        return self.exporter.export(
            _redact_batch(spans, _span_texts, partial(redact_span, redact=redact), redact)
        )


class RedactingLogRecordExporter(WrappingExporter[LogRecordExporter], LogRecordExporter):
    """Hands ``exporter`` every log record redacted by ``redact`` (unchanged records as they are)."""

    def __init__(self, exporter: LogRecordExporter, redact: Redactor) -> None:
        self.exporter = exporter
        self._redact = redact

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Redact, then export."""
        redact = self._redact
        redact_one = partial(redact_log_record, redact=redact)
        return self.exporter.export(_redact_batch(batch, _log_texts, redact_one, redact))
