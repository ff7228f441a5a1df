"""Whether anything observes the spans and records an execution makes, and what stands in when not.

An SDK span costs about 10 µs to create even when no span processor is attached,
and an OTel log record several more; when nothing consumes them that cost buys
nothing. The executor asks, once per execution, whether the tracer provider has a
span processor and whether the logger provider has a processor besides its own
capture; when not, the root span is an :func:`unobserved_span` (valid ids, so log
records and ``trace_id`` still correlate, no recording), phases make no span, and
captured ``print`` lines go straight into the execution's log. Both checks answer
"observed" when they cannot tell (:mod:`otel_flash.telemetry.sdk`), so the full path
is the fallback.
"""

from __future__ import annotations

import random

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_flash.telemetry.sdk import log_record_processors, span_processors

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def spans_observed(provider: trace.TracerProvider) -> bool:
    """False only for an SDK tracer provider with no span processor attached."""
    processors = span_processors(provider)
    return processors is None or bool(processors)


def records_observed(provider: LoggerProvider, own: LogRecordProcessor) -> bool:
    """False only when ``own`` is the provider's single log record processor."""
    processors = log_record_processors(provider)
    return processors is None or processors != (own,)


def unobserved_span(parent: Context | None = None) -> NonRecordingSpan:
    """A non-recording span with fresh ids, in the trace of ``parent``'s span if it has one."""
    parent_context = trace.get_current_span(parent).get_span_context()
    trace_id = parent_context.trace_id if parent_context.is_valid else random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED))
