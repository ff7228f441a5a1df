"""Execution metrics, derived from finished ``flash.*`` spans.

:class:`SpanMetricsProcessor` sits on the tracer provider and turns each finished
span into measurements, so no other module records metrics itself:

========================================  =========  ===========================================
instrument                                kind       attributes
========================================  =========  ===========================================
``flash.executions``                      counter    ``flash.outcome``, ``flash.execution_type``
``flash.phase.duration`` (s)              histogram  ``flash.phase`` (``execute`` for the whole
                                                     execution), ``flash.outcome``
``flash.dependencies.installs``           counter    ``flash.dependencies.kind``,
                                                     ``flash.dependencies.installer``,
                                                     ``flash.outcome``
``flash.dependencies.cache_hits``         counter    ``flash.dependencies.kind``,
                                                     ``flash.dependencies.installer``
``flash.log.lines``                       counter    ``flash.log.disposition`` (``kept`` or
                                                     ``omitted``)
``flash.log.omitted_bytes`` (By)          counter
========================================  =========  ===========================================

``flash.outcome`` is ``success`` or ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from otel_flash._internal import internal_logger

_DURATION_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
_DEPENDENCY_KINDS = {"flash.dependencies.system": "system", "flash.dependencies.python": "python"}


class SpanMetricsProcessor(SpanProcessor):
    """Records the metrics of executions from their spans as the spans end.

    Never raises into the code that ends a span: a failure is reported on
    ``flash.internal``.
    """

    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("otel_flash")
        self._executions = meter.create_counter(
            "flash.executions", unit="{execution}", description="Executions, by outcome."
        )
        self._duration = meter.create_histogram(
            "flash.phase.duration",
            unit="s",
            description="Duration of each phase of an execution, and of the whole execution.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS_S,
        )
        self._installs = meter.create_counter(
            "flash.dependencies.installs", unit="{install}", description="Installer processes run."
        )
        self._cache_hits = meter.create_counter(
            "flash.dependencies.cache_hits",
            unit="{install}",
            description="Dependency phases skipped because everything was already installed.",
        )
        self._log_lines = meter.create_counter(
            "flash.log.lines", unit="{line}", description="Captured lines, kept or omitted."
        )
        self._omitted_bytes = meter.create_counter(
            "flash.log.omitted_bytes", unit="By", description="Bytes of captured output omitted."
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Record the measurements ``span`` stands for, if it is one of ours."""
        if not span.name.startswith("flash."):
            return
        try:
            self._record(span)
        except Exception:
            internal_logger().exception("could not record metrics of span %r", span.name)

    def shutdown(self) -> None:
        """Nothing to release; the meter provider is shut down by its owner."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True

    def _record(self, span: ReadableSpan) -> None:
        attributes: Mapping[str, Any] = span.attributes or {}
        seconds = max(0, (span.end_time or 0) - (span.start_time or 0)) / 1e9
        if span.name == "flash.execute":
            outcome = "success" if attributes.get("flash.success") else "error"
            kind = str(attributes.get("flash.execution_type", "unknown"))
            self._executions.add(1, {"flash.outcome": outcome, "flash.execution_type": kind})
            self._duration.record(seconds, {"flash.phase": "execute", "flash.outcome": outcome})
            self._record_log(attributes)
            return
        outcome = "error" if span.status.status_code is StatusCode.ERROR else "success"
        self._duration.record(
            seconds, {"flash.phase": span.name.removeprefix("flash."), "flash.outcome": outcome}
        )
        if span.name in _DEPENDENCY_KINDS:
            self._record_install(_DEPENDENCY_KINDS[span.name], attributes, outcome)

    def _record_install(self, kind: str, attributes: Mapping[str, Any], outcome: str) -> None:
        labels = {
            "flash.dependencies.kind": kind,
            "flash.dependencies.installer": str(attributes.get("flash.dependencies.installer", "unknown")),
        }
        if attributes.get("flash.dependencies.skipped"):
            self._cache_hits.add(1, labels)
        else:
            self._installs.add(1, {**labels, "flash.outcome": outcome})

    def _record_log(self, attributes: Mapping[str, Any]) -> None:
        total = int(attributes.get("flash.log.lines", 0))
        omitted = int(attributes.get("flash.log.omitted_lines", 0))
        self._log_lines.add(max(0, total - omitted), {"flash.log.disposition": "kept"})
        if omitted:
            self._log_lines.add(omitted, {"flash.log.disposition": "omitted"})
        omitted_bytes = int(attributes.get("flash.log.omitted_bytes", 0))
        if omitted_bytes:
            self._omitted_bytes.add(omitted_bytes)
