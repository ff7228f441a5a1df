"""Re-emitting what a function process sends (log records, spans) into the worker's providers."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import Logger, LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags

from otel_flash._internal import internal_logger
from otel_flash.isolation.messages import Frame
from otel_flash.isolation.wire import attribute_values, decode_span
from otel_flash.redaction import Redactor
from otel_flash.telemetry import span_end_hook


class Relay:
    """Re-emits a child's log records and spans into the worker's providers.

    Spans go straight to the worker's span processors
    (:func:`otel_flash.telemetry.sdk.span_end_hook`: there is no public way to hand a
    provider a span that ended elsewhere); with a provider that has none, the
    child's own spans are dropped and this is said once on ``flash.internal``.
    Whatever the child sends is redacted here, and a malformed message is dropped, as
    is a span of a trace other than the execution's (the one current when it arrives);
    a log record or write naming another trace is re-emitted in the execution's span.
    """

    def __init__(
        self, tracer_provider: trace.TracerProvider, logger_provider: LoggerProvider, redact: Redactor
    ):
        self._logger_provider = logger_provider
        self._loggers: dict[str, Logger] = {}
        self._redact = redact
        self._on_end = span_end_hook(tracer_provider)
        resource = getattr(tracer_provider, "resource", None)
        self._resource = resource if isinstance(resource, Resource) else Resource.get_empty()
        self._said: set[str] = set()

    def log(self, message: Frame) -> None:
        """Emit the record in the current context (the execution's), with the child's ids."""
        try:
            self._logger(str(message.get("scope") or "")).emit(self._record(message))
        except Exception:
            internal_logger().exception("dropped a malformed log record from a function process")

    def context_of(self, message: Frame) -> otel_context.Context:
        """The current context with the span the child named in ``message`` as current span.

        No span when the child named none; the current span itself when it named a span
        of another trace.
        """
        current = otel_context.get_current()
        trace_id, span_id = int(message.get("trace_id") or 0), int(message.get("span_id") or 0)
        if not (trace_id and span_id):
            return trace.set_span_in_context(INVALID_SPAN, current)
        if trace_id != _current_trace_id():
            return current
        flags = TraceFlags(int(message.get("flags") or 0))
        span = NonRecordingSpan(SpanContext(trace_id, span_id, False, flags))
        return trace.set_span_in_context(span, current)

    def _record(self, message: Frame) -> LogRecord:
        body = message.get("body")
        number = message.get("severity_number")
        redact = self._redact
        return LogRecord(
            timestamp=message.get("timestamp"),
            observed_timestamp=message.get("observed"),
            context=self.context_of(message),
            severity_text=message.get("severity_text"),
            severity_number=SeverityNumber(number) if isinstance(number, int) else None,
            body=redact(body) if isinstance(body, str) else body,
            attributes=self._attributes(message.get("attributes")),
        )

    def _attributes(self, raw: Any) -> dict[str, Any]:
        return {key: self._redact.value(value) for key, value in attribute_values(raw).items()}

    def _logger(self, scope: str) -> Logger:
        logger = self._loggers.get(scope)
        if logger is None:
            if len(self._loggers) > 4096:  # scopes are named by user code: keep the cache bounded
                self._loggers.clear()
            logger = self._loggers.setdefault(scope, self._logger_provider.get_logger(scope))
        return logger

    def _say_once(self, warning: str) -> None:
        if warning not in self._said:
            self._said.add(warning)
            internal_logger().warning(warning)

    def span(self, message: Frame) -> None:
        """Hand the span to the worker's span processors as if it had ended here."""
        if self._on_end is None:
            self._say_once("spans of function processes are dropped: not an SDK TracerProvider")
            return
        try:
            if int(message.get("trace_id") or 0) != _current_trace_id():
                self._say_once("spans of other traces than their execution's are dropped")
                return
            redact = self._redact.value
            message["attributes"] = {key: redact(value) for key, value in dict(message["attributes"]).items()}
            for event in message.get("events") or []:
                event[2] = {key: redact(value) for key, value in dict(event[2]).items()}
            self._on_end(decode_span(message, self._resource))
        except Exception:
            internal_logger().exception("dropped a malformed span from a function process")


def _current_trace_id() -> int:
    """The trace of the execution being relayed (the worker's current span's)."""
    return int(trace.get_current_span().get_span_context().trace_id)
