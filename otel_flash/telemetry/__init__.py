"""The OpenTelemetry side of an execution: providers, export, delivery, metrics and context (internal).

Modules: ``providers`` (which tracer, logger and meter providers an executor uses, and
building SDK ones), ``exporters`` (exporters and processors from the export settings),
``delivery`` (bounded batch processors that count what they drop), ``export_queue`` (their
queue and export thread), ``redacting``
(exporter wrappers that redact on the way out), ``wrapping`` (what those wrappers
share), ``spans`` (the light execution spans),
``metrics`` (execution metrics from the phase timings), ``observation`` (whether anything
observes an execution's spans and records), ``propagation`` (W3C context in and out),
``threads`` (the context carried into user threads), ``tree`` (spans as a tree),
``faas`` (the FaaS conventions and the worker's start-up span), ``sdk`` (the SDK
internals otel_flash relies on, in one place), ``otlp_encoding`` (spans and log records
written as OTLP protobuf bytes), ``otlp_exporters`` (the SDK's OTLP exporters sending them),
``span_data`` (a span's exported fields in one tuple).
"""

from otel_flash.telemetry.faas import (
    ColdStart,
    invocation_attributes,
    worker_init,
)
from otel_flash.telemetry.metrics import ExecutionFacts
from otel_flash.telemetry.observation import records_observed, spans_observed, unobserved_span
from otel_flash.telemetry.propagation import extract_context, format_trace_id, inject_context
from otel_flash.telemetry.providers import Telemetry, build_providers, configure_telemetry, resolve_telemetry
from otel_flash.telemetry.sdk import enable, new_logger_provider, new_tracer_provider, span_end_hook
from otel_flash.telemetry.spans import LightTracer, light_processors, light_tracer
from otel_flash.telemetry.tree import SpanNode, build_span_tree, format_span_tree

__all__ = [
    "ColdStart",
    "ExecutionFacts",
    "LightTracer",
    "SpanNode",
    "Telemetry",
    "build_providers",
    "build_span_tree",
    "configure_telemetry",
    "enable",
    "extract_context",
    "format_span_tree",
    "format_trace_id",
    "inject_context",
    "invocation_attributes",
    "light_processors",
    "light_tracer",
    "new_logger_provider",
    "new_tracer_provider",
    "records_observed",
    "resolve_telemetry",
    "span_end_hook",
    "spans_observed",
    "unobserved_span",
    "worker_init",
]
