"""In-memory telemetry for tests: what otel_flash's own suite uses, public for yours.

Example::

    from otel_flash import RemoteExecutor
    from otel_flash.testing import capture_telemetry

    with capture_telemetry() as telemetry:
        with RemoteExecutor(tracer_provider=telemetry.tracer_provider,
                            logger_provider=telemetry.logger_provider,
                            meter_provider=telemetry.meter_provider) as executor:
            executor.execute_sync(request)
        assert telemetry.span_tree()[0].shape() == ("flash.execute", (...))
        assert "flash.executions" in telemetry.metric_names()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_flash.telemetry import (
    SpanNode,
    build_span_tree,
    format_span_tree,
    new_logger_provider,
    new_tracer_provider,
)

__all__ = ["SpanNode", "TelemetryCapture", "build_span_tree", "capture_telemetry", "format_span_tree"]


@dataclass
class TelemetryCapture:
    """Fresh SDK providers whose spans, log records and metrics are kept in memory.

    A context manager too: leaving the ``with`` block shuts the providers down.
    """

    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    span_exporter: InMemorySpanExporter = field(repr=False)
    log_exporter: InMemoryLogRecordExporter = field(repr=False)
    meter_provider: MeterProvider | None = None
    metric_reader: InMemoryMetricReader | None = field(default=None, repr=False)

    def __enter__(self) -> TelemetryCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self.span_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (an error if there are none or several)."""
        found = [span for span in self.spans() if span.name == name]
        if len(found) != 1:
            msg = f"expected one span {name!r}, found {len(found)}"
            raise LookupError(msg)
        return found[0]

    def span_tree(self) -> list[SpanNode]:
        """Finished spans as trees."""
        return build_span_tree(self.spans())

    def log_records(self) -> list[ReadableLogRecord]:
        """Exported log records, in emission order."""
        return list(self.log_exporter.get_finished_logs())

    def log_bodies(self) -> list[str]:
        """The bodies of :meth:`log_records` as text."""
        return [str(record.log_record.body) for record in self.log_records()]

    def metrics(self) -> MetricsData | None:
        """The metrics collected now (None when nothing was recorded, or without a reader)."""
        return self.metric_reader.get_metrics_data() if self.metric_reader is not None else None

    def metric_names(self) -> list[str]:
        """The names of the metrics collected now, sorted."""
        data = self.metrics()
        if data is None:
            return []
        return sorted(
            {
                metric.name
                for resource in data.resource_metrics
                for scope in resource.scope_metrics
                for metric in scope.metrics
            }
        )

    def clear(self) -> None:
        """Forget everything captured so far."""
        self.span_exporter.clear()
        self.log_exporter.clear()

    def shutdown(self) -> None:
        """Shut the providers down."""
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def capture_telemetry(resource: Resource | None = None) -> TelemetryCapture:
    """New providers exporting synchronously into in-memory exporters and a metric reader (none global)."""
    resource = resource or Resource.create({"service.name": "otel-flash-test"})
    span_exporter = InMemorySpanExporter()
    log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    tracer_provider = new_tracer_provider(resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = new_logger_provider(resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    metric_reader = InMemoryMetricReader()
    meter_provider = MeterProvider([metric_reader], resource=resource, shutdown_on_exit=False)
    return TelemetryCapture(
        tracer_provider, logger_provider, span_exporter, log_exporter, meter_provider, metric_reader
    )
