"""Exporters that wrap another: batches are theirs to handle; flush and shutdown go to the wrapped one."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from otel_flash.telemetry.sdk import metric_preferences

__all__ = ["WrappingExporter", "WrappingMetricExporter"]

_E = TypeVar("_E", SpanExporter, LogRecordExporter)


class WrappingExporter(Generic[_E]):
    """Mixin for a span or log record exporter that forwards to ``self.exporter``.

    Put it first among the bases, so its ``shutdown`` and ``force_flush`` are the ones used.
    """

    exporter: _E

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.exporter.shutdown()  # type: ignore[no-untyped-call]  # LogRecordExporter's lacks annotations

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the wrapped exporter."""
        return self.exporter.force_flush(timeout_millis)


class WrappingMetricExporter(MetricExporter):
    """Base of a metric exporter that forwards to ``exporter``, with its temporality and aggregation.

    The reader takes its preferences from the outermost exporter, so they are passed on.
    """

    def __init__(self, exporter: MetricExporter) -> None:
        super().__init__(*metric_preferences(exporter))
        self.exporter = exporter

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the wrapped exporter."""
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down."""
        self.exporter.shutdown(timeout_millis, **kwargs)
