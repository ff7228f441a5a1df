"""Telemetry that never waits: bounded batch processors that count what they drop.

An execution only ever appends a finished span or log record to a bounded queue;
a background thread exports batches. When the queue is full the item is dropped
at once, and when an export fails its batch is lost. Both are counted in a
:class:`DeliveryLedger` and reported on ``flash.internal`` (the worker's own
stderr), at most once per interval, never into a user's captured stdout. The queue
and its export thread are otel_flash's own (:mod:`otel_flash.telemetry.export_queue`),
so the SDK's "queue full" warning, which would be logged in the execution's
context, is never logged by them.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_flash._internal import internal_logger
from otel_flash.capture.records import NO_CONTEXT, HandedLogRecord
from otel_flash.export_settings import BatchSettings
from otel_flash.telemetry.export_queue import ExportQueue
from otel_flash.telemetry.wrapping import WrappingExporter, WrappingMetricExporter


class DeliveryLedger:
    """Thread-safe counts of one signal's items on their way to one destination.

    ``accepted`` items entered the queue, ``handed`` were given to the exporter,
    ``exported`` arrived; ``queue_full`` were refused and ``failed`` were in batches
    whose export failed. At any moment ``produced == exported + lost``: what is not
    exported was refused, failed, is still queued, or is in an export not answered yet.
    """

    def __init__(
        self,
        items: str,
        destination: str,
        *,
        report_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.items = items
        self.destination = destination
        self._interval = report_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_report: float | None = None
        self.accepted = self.handed = self.exported = self.queue_full = self.failed = 0

    @property
    def produced(self) -> int:
        """Items offered for export: accepted or refused."""
        return self.accepted + self.queue_full

    @property
    def queued(self) -> int:
        """Items accepted and not yet handed to the exporter."""
        return self.accepted - self.handed

    @property
    def in_flight(self) -> int:
        """Items handed to the exporter whose export has not answered yet."""
        return self.handed - self.exported - self.failed

    @property
    def dropped(self) -> int:
        """Items refused or lost in a failed export so far."""
        return self.queue_full + self.failed

    @property
    def lost(self) -> int:
        """Items not exported (yet): ``produced - exported``."""
        return self.produced - self.exported

    def accept(self, limit: int) -> bool:
        """Take one item if fewer than ``limit`` wait; otherwise count it dropped and refuse."""
        return self.accept_many(1, limit) == 1

    def accept_many(self, count: int, limit: int) -> int:
        """Take as many of ``count`` items as fit under ``limit`` waiting; count the rest dropped.

        Returns how many were taken (the first ones).
        """
        with self._lock:
            room = limit - self.accepted + self.handed
            taken = count if count <= room else (room if room > 0 else 0)
            self.accepted += taken
            self.queue_full += count - taken
        if taken < count:
            self._report("the export queue is full")
        return taken

    def record_offered(self, count: int) -> None:
        """Count ``count`` items produced without a queue (a metric collection handed straight over)."""
        with self._lock:
            self.accepted += count

    def record_handed(self, count: int) -> None:
        """Count a batch of ``count`` items taken off the queue for export."""
        with self._lock:
            self.handed += count

    def record_result(self, count: int, ok: bool, reason: str = "the export failed") -> None:
        """Count whether a batch of ``count`` handed items arrived."""
        with self._lock:
            if ok:
                self.exported += count
            else:
                self.failed += count
        if not ok:
            self._report(reason)

    def summary(self) -> str:
        """One sentence with every count; its numbers add up: exported + not exported = produced."""
        with self._lock:
            queue_full, failed, queued, in_flight = self.queue_full, self.failed, self.queued, self.in_flight
            exported, produced = self.exported, self.produced
        lost = queue_full + failed + queued + in_flight
        return (
            f"{lost} of {produced} {self.items} not exported to {self.destination} "
            f"({queue_full} refused with the queue full, {failed} in failed exports, "
            f"{queued} still queued, {in_flight} in exports not answered); {exported} exported"
        )

    def report_final(self) -> None:
        """At shutdown: report the totals if anything was not exported."""
        if self.lost:
            internal_logger().warning("telemetry: %s", self.summary())

    def _report(self, reason: str) -> None:
        now = self._clock()
        with self._lock:
            if self._last_report is not None and now - self._last_report < self._interval:
                return
            self._last_report = now
        internal_logger().warning("telemetry: dropping %s because %s; %s", self.items, reason, self.summary())


def _export_counted(ledger: DeliveryLedger, count: int, export: Callable[[], Any], success: Any) -> Any:
    """Run ``export``; an exception becomes a failure (reported) instead of reaching the SDK."""
    ledger.record_handed(count)
    try:
        result = export()
    except Exception as exc:
        ledger.record_result(count, False, f"the exporter raised {type(exc).__name__}: {exc}")
        return None
    ledger.record_result(count, result == success)
    return result


class CountingSpanExporter(WrappingExporter[SpanExporter], SpanExporter):
    """Forwards to ``exporter`` and records each batch's fate in ``ledger``."""

    def __init__(self, exporter: SpanExporter, ledger: DeliveryLedger) -> None:
        self.exporter = exporter
        self._ledger = ledger

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export one batch, counting it."""
        ok = SpanExportResult.SUCCESS
        result = _export_counted(self._ledger, len(spans), lambda: self.exporter.export(spans), ok)
        return result if isinstance(result, SpanExportResult) else SpanExportResult.FAILURE


class CountingLogRecordExporter(WrappingExporter[LogRecordExporter], LogRecordExporter):
    """Forwards to ``exporter`` and records each batch's fate in ``ledger``."""

    def __init__(self, exporter: LogRecordExporter, ledger: DeliveryLedger) -> None:
        self.exporter = exporter
        self._ledger = ledger

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Export one batch, counting it."""
        ok = LogRecordExportResult.SUCCESS
        result = _export_counted(self._ledger, len(batch), lambda: self.exporter.export(batch), ok)
        return result if isinstance(result, LogRecordExportResult) else LogRecordExportResult.FAILURE


class CountingMetricExporter(WrappingMetricExporter):
    """Forwards to ``exporter`` and records each collection's data points in ``ledger``.

    A metric reader has no queue: every collection is produced and handed at once,
    so its data points are offered and handed together.
    """

    def __init__(self, exporter: MetricExporter, ledger: DeliveryLedger) -> None:
        super().__init__(exporter)
        self._ledger = ledger

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Export one collection, counting its data points."""
        count = _data_points(metrics_data)
        self._ledger.record_offered(count)
        ok = MetricExportResult.SUCCESS
        result = _export_counted(
            self._ledger, count, lambda: self.exporter.export(metrics_data, timeout_millis, **kwargs), ok
        )
        return result if isinstance(result, MetricExportResult) else MetricExportResult.FAILURE


def _data_points(metrics_data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource in metrics_data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    )


class BoundedSpanProcessor(SpanProcessor):
    """Batches sampled spans for ``exporter`` in an :class:`ExportQueue` whose bound ``ledger`` counts."""

    def __init__(self, exporter: SpanExporter, batch: BatchSettings, ledger: DeliveryLedger) -> None:
        self.ledger = ledger
        self._queue = ExportQueue[Any](CountingSpanExporter(exporter, ledger), batch, ledger)
        self._prepare: Callable[[Sequence[Any]], list[Any]] | None = getattr(exporter, "prepare", None)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a sampled span unless the queue is full."""
        if span.context is None or not span.context.trace_flags.sampled:
            return  # the SDK's batch processor ignores these too; counting them would leak
        self.on_end_many((span,))

    def on_end_many(self, spans: Sequence[ReadableSpan]) -> None:
        """Queue several sampled spans at once (an execution's, see :mod:`otel_flash.telemetry.spans`),
        in the form the exporter takes (:class:`~otel_flash.telemetry.export_process.ProcessSpanExporter`'s
        ``prepare``)."""
        prepare = self._prepare
        self._queue.put_many(spans if prepare is None else prepare(spans))

    def shutdown(self) -> None:
        """Export what is queued and stop (may wait on the exporter; bound it from outside)."""
        self._queue.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued now."""
        return self._queue.force_flush()


class BoundedLogRecordProcessor(LogRecordProcessor):
    """Batches log records for ``exporter`` in an :class:`ExportQueue` whose bound ``ledger`` counts."""

    def __init__(self, exporter: LogRecordExporter, batch: BatchSettings, ledger: DeliveryLedger) -> None:
        self.ledger = ledger
        counted = CountingLogRecordExporter(exporter, ledger)
        self._queue = ExportQueue[Any](counted, batch, ledger)
        self._prepare: Callable[[Sequence[Any]], list[Any]] | None = getattr(exporter, "prepare", None)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Queue the record unless the queue is full: flat when the exporter takes it so, else without its
        context (as it is when its maker releases it once emitted, else a copy)."""
        prepare = self._prepare
        self._queue.put_many((_readable(log_record),) if prepare is None else prepare((log_record,)))

    def shutdown(self) -> None:
        """Export what is queued and stop (may wait on the exporter; bound it from outside)."""
        self._queue.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued now."""
        return self._queue.force_flush()


def _readable(record: ReadWriteLogRecord) -> ReadableLogRecord:
    """What ``BatchLogRecordProcessor.on_emit`` queues: the record without the context it was emitted in.

    Queued records outlive many garbage collections: what is queued holds as few tracked
    objects as it can (one shared empty context; its attributes as a plain dict, which the
    collector does not track, unless the SDK's bounded map dropped some and must still say
    how many). A :class:`~otel_flash.capture.records.HandedLogRecord` (the bridge's, the
    captured streams') is queued as it is: its maker drops that context itself once every
    processor has seen it. Any other record is copied.
    """
    log = record.log_record
    resource = record.resource if record.resource is not None else Resource.create({})
    if type(log) is HandedLogRecord:
        log.kept = True  # its maker releases it once every processor has seen it
        return ReadableLogRecord(log, resource, record.instrumentation_scope, record.limits)
    if hasattr(log, "__dict__"):
        copied = object.__new__(type(log))
        copied.__dict__.update(vars(log))  # as copy.copy, without its generic protocol
    else:
        copied = copy.copy(log)
    copied.context = NO_CONTEXT  # the execution's context (and what it holds) is not kept alive
    attributes = copied.attributes
    if isinstance(attributes, BoundedAttributes) and not attributes.dropped:
        copied.attributes = attributes.copy()
    return ReadableLogRecord(copied, resource, record.instrumentation_scope, record.limits)
