"""The one place otel_flash touches the OpenTelemetry SDK's internals (and the API's ``SpanContext`` layout).

Providers otel_flash builds (:func:`new_tracer_provider`, :func:`new_logger_provider`)
get processor lists of our own through the public constructor arguments
(``TracerProvider(active_span_processor=...)``, ``LoggerProvider(multi_log_record_processor=...)``),
so their processors are read without any private attribute. Only providers a caller
passes in are read through the SDK's private attributes, here and nowhere else; the
readers answer None when they cannot tell. ``tests/test_sdk.py`` pins them to the SDK
version they were checked against (:data:`CHECKED_SDK_VERSION`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, SynchronousMultiLogRecordProcessor
from opentelemetry.sdk.metrics import ExemplarFilter
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter
from opentelemetry.sdk.metrics.view import Aggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = [
    "CHECKED_SDK_VERSION",
    "READABLE_SPAN_FIELDS",
    "SPAN_KEY",
    "LogRecordProcessors",
    "SpanProcessors",
    "context_access",
    "enable",
    "exemplar_filter",
    "known_span_context",
    "log_record_processors",
    "metric_preferences",
    "new_logger_provider",
    "new_tracer_provider",
    "sampled_span_context",
    "span_end_hook",
    "span_processors",
]

CHECKED_SDK_VERSION = "1.45.1"
"""The opentelemetry-sdk release whose private attributes the readers below were checked against."""

_P = TypeVar("_P")

READABLE_SPAN_FIELDS = (
    "_attributes",
    "_context",
    "_end_time",
    "_events",
    "_instrumentation_info",
    "_instrumentation_scope",
    "_kind",
    "_links",
    "_name",
    "_parent",
    "_resource",
    "_start_time",
    "_status",
)
"""The fields ``ReadableSpan.__init__`` sets and its properties and ``to_json`` read (SDK private).

A span class that sets them itself (:class:`~otel_flash.telemetry.spans.LightSpan`)
is read by any exporter as the ``ReadableSpan`` it is, without a constructor call of
13 arguments per span.
"""
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)

SPAN_KEY: str = _SPAN_KEY
"""The key of the current span in a ``Context`` (``trace.set_span_in_context`` writes it; API private)."""


class SpanProcessors(SynchronousMultiSpanProcessor):
    """A tracer provider's span processors, in a list otel_flash owns and can read."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        self.processors: tuple[SpanProcessor, ...] = ()
        self._own_lock = threading.Lock()

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        """Add a processor (what ``TracerProvider.add_span_processor`` calls)."""
        with self._own_lock:
            self.processors += (span_processor,)
            super().add_span_processor(span_processor)


class LogRecordProcessors(SynchronousMultiLogRecordProcessor):
    """A logger provider's log record processors, in a list otel_flash owns and can read."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        self.processors: tuple[LogRecordProcessor, ...] = ()
        self._own_lock = threading.Lock()

    def add_log_record_processor(self, log_record_processor: LogRecordProcessor) -> None:
        """Add a processor (what ``LoggerProvider.add_log_record_processor`` calls)."""
        with self._own_lock:
            self.processors += (log_record_processor,)
            super().add_log_record_processor(log_record_processor)


class _OwnTracerProvider(TracerProvider):
    """An SDK tracer provider built by otel_flash, holding its :class:`SpanProcessors`."""

    def __init__(self, resource: Resource, processors: SpanProcessors) -> None:
        super().__init__(resource=resource, active_span_processor=processors, shutdown_on_exit=False)
        self.own_processors = processors


class _OwnLoggerProvider(LoggerProvider):
    """An SDK logger provider built by otel_flash, holding its :class:`LogRecordProcessors`."""

    def __init__(self, resource: Resource, processors: LogRecordProcessors) -> None:
        super().__init__(resource=resource, multi_log_record_processor=processors, shutdown_on_exit=False)
        self.own_processors = processors


def new_tracer_provider(resource: Resource) -> TracerProvider:
    """An SDK tracer provider whose span processors we can read (not shut down at exit)."""
    return _OwnTracerProvider(resource, SpanProcessors())


def new_logger_provider(resource: Resource) -> LoggerProvider:
    """An SDK logger provider whose log record processors we can read (not shut down at exit)."""
    return _OwnLoggerProvider(resource, LogRecordProcessors())


def span_processors(provider: trace.TracerProvider) -> tuple[SpanProcessor, ...] | None:
    """The span processors of an SDK tracer provider, in order; None when it cannot tell."""
    if isinstance(provider, _OwnTracerProvider):
        return provider.own_processors.processors
    active = getattr(provider, "_active_span_processor", None)  # SDK private (a caller's provider)
    processors = getattr(active, "_span_processors", None)
    return processors if isinstance(processors, tuple) else None


def log_record_processors(provider: LoggerProvider) -> tuple[LogRecordProcessor, ...] | None:
    """The log record processors of an SDK logger provider, in order; None when it cannot tell."""
    if isinstance(provider, _OwnLoggerProvider):
        return provider.own_processors.processors
    multi = getattr(provider, "_multi_log_record_processor", None)  # SDK private (a caller's provider)
    processors = getattr(multi, "_log_record_processors", None)
    return processors if isinstance(processors, tuple) else None


def span_end_hook(provider: trace.TracerProvider) -> Callable[[ReadableSpan], None] | None:
    """What hands a span that ended elsewhere to all of ``provider``'s processors; None if nothing.

    There is no public way to give a provider a span it did not start: for a provider
    of a caller this is the SDK's private active span processor.
    """
    if isinstance(provider, _OwnTracerProvider):
        return provider.own_processors.on_end
    processor = getattr(provider, "_active_span_processor", None)
    on_end = getattr(processor, "on_end", None)
    return on_end if callable(on_end) else None


def metric_preferences(
    exporter: MetricExporter,
) -> tuple[dict[type, AggregationTemporality] | None, dict[type, Aggregation] | None]:
    """The temporality and aggregation an exporter prefers, by instrument class (None: the defaults).

    ``PeriodicExportingMetricReader`` reads them from the exporter's attributes that
    ``MetricExporter.__init__`` sets; an exporter wrapping another passes them on.
    """
    temporality = getattr(exporter, "_preferred_temporality", None)  # set by MetricExporter.__init__
    aggregation = getattr(exporter, "_preferred_aggregation", None)
    return temporality, aggregation


def exemplar_filter(provider: metrics.MeterProvider) -> ExemplarFilter | None:
    """The exemplar filter of an SDK meter provider (``OTEL_METRICS_EXEMPLAR_FILTER``); None if unknown.

    The provider keeps it in its private configuration; there is no public reader.
    """
    found = getattr(getattr(provider, "_sdk_config", None), "exemplar_filter", None)
    return found if isinstance(found, ExemplarFilter) else None


def enable(provider: _P) -> _P:
    """Undo the SDK's own reading of ``OTEL_SDK_DISABLED`` on a provider we build.

    The SDK providers read that variable themselves and then hand out no-op tracers
    and loggers, which would lose the executor's stdout capture and trace ids. Here
    the variable means "export nothing", and :class:`ExportSettings` already does that.
    There is no public switch: this writes the SDK's private flag.
    """
    if getattr(provider, "_disabled", False):
        provider._disabled = False  # type: ignore[attr-defined]  # SDK private flag, see docstring
    return provider


def sampled_span_context(
    trace_id: int, span_id: int, trace_state: TraceState = DEFAULT_TRACE_STATE
) -> SpanContext:
    """``SpanContext(trace_id, span_id, False, TraceFlags(SAMPLED), trace_state)``, for ids known to be valid.

    Built as the tuple the API's ``SpanContext`` is (its fields in order, then whether
    it is valid), without its constructor's Python-level checks: ``0 < trace_id < 2**128``
    and ``0 < span_id < 2**64`` are the caller's to guarantee.
    """
    return tuple.__new__(SpanContext, (trace_id, span_id, False, _SAMPLED, trace_state, True))


def known_span_context(
    trace_id: int, span_id: int, is_remote: bool, trace_flags: TraceFlags, trace_state: TraceState
) -> SpanContext:
    """A ``SpanContext`` of ids known to be valid (they were, where it was first made), built as
    :func:`sampled_span_context` builds one: a span rebuilt in the export process."""
    return tuple.__new__(SpanContext, (trace_id, span_id, is_remote, trace_flags, trace_state, True))


def context_access() -> tuple[
    Callable[[], Context], Callable[[Context], Token[Context]], Callable[[Token[Context]], None]
]:
    """What reads the current ``Context``, what makes one current (returning its token), what resets a token.

    Under the API's default runtime context these are its ``ContextVar``'s own methods
    (``context.get_current``, ``context.attach`` and ``context.detach`` wrap them in two
    Python calls each; ``reset`` raises ``ValueError`` for a token of another context,
    where ``detach`` logs it); under another runtime (``OTEL_PYTHON_CONTEXT``), the API's functions.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)  # API private
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable.get, variable.set, variable.reset
    return otel_context.get_current, otel_context.attach, otel_context.detach
