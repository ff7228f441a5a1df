"""Exporters that wrap another: batches are theirs to handle; flush and shutdown go to the wrapped one."""

from __future__ import annotations

from typing import Generic, TypeVar

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["WrappingExporter"]

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
