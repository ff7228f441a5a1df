"""W3C trace context across the wire: a request's ``trace_context`` carrier in, a caller's out."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_log = logging.getLogger("flash.propagation")
_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def extract_context(
    carrier: Mapping[str, str] | None, *, origin: str = "trace_context traceparent"
) -> Context | None:
    """The caller's context from a W3C carrier, or None.

    A malformed ``traceparent`` is ignored with a warning naming its ``origin``
    (the execution then starts a new trace); it is never an error.
    """
    if not carrier:
        return None
    clean = {str(key).lower(): value for key, value in carrier.items() if isinstance(value, str)}
    context = _PROPAGATOR.extract(clean)
    if "traceparent" in clean and not trace.get_current_span(context).get_span_context().is_valid:
        _log.warning("ignoring malformed %s %r", origin, clean["traceparent"][:80])
    return context


def inject_context(context: Context | None = None) -> dict[str, str]:
    """``traceparent``, ``tracestate`` and ``baggage`` of ``context`` (default: the current one).

    Empty when there is no valid span and no baggage to send.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def format_trace_id(span: trace.Span) -> str:
    """32 lowercase hex digits of ``span``'s trace id."""
    return trace.format_trace_id(span.get_span_context().trace_id)
