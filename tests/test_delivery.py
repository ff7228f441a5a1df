"""Exact accounting of exported telemetry: exported + not exported = produced, for every signal."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, set_value
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    ReadableLogRecord,
)
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.capture.records import HandedLogRecord
from otel_flash.export_settings import BatchSettings, ExportSettings
from otel_flash.telemetry.delivery import BoundedLogRecordProcessor, BoundedSpanProcessor, DeliveryLedger
from tests.otlp_receivers import GrpcReceiver
from tests.requests import function_request

WORK = """
import logging

def work(n):
    logging.getLogger("user").warning("working on %d", n)
    return n
"""


def test_items_in_an_unanswered_export_count_as_not_exported() -> None:
    """A batch handed to an exporter that never answered is in the summary's total, not missing from it."""
    ledger = DeliveryLedger("log records", "http://collector:4317")
    for _ in range(5):
        ledger.accept(10)
    ledger.record_handed(3)
    ledger.record_result(1, True)
    assert ledger.summary() == (
        "4 of 5 log records not exported to http://collector:4317 (0 refused with the queue full, "
        "0 in failed exports, 2 still queued, 2 in exports not answered); 1 exported"
    )
    assert ledger.exported + ledger.lost == ledger.produced


def test_every_signal_adds_up_when_the_collector_stops(internal_reports: list[str]) -> None:
    """Spans, log records and metric points: what arrived plus what is reported lost is all that was made."""
    receiver = GrpcReceiver().start()
    export = ExportSettings.otlp(
        receiver.endpoint,
        timeout_s=1.0,
        span_batch=BatchSettings(schedule_delay_ms=10),
        log_batch=BatchSettings(schedule_delay_ms=10),
        metric_interval_ms=100,
        shutdown_timeout_s=2.0,
    )
    executor = RemoteExecutor(FlashConfig().replace(export=export))
    try:
        for n in range(5):
            executor.execute_sync(function_request(WORK, "work", n))
        assert _wait(lambda: all(ledger.exported for ledger in executor.telemetry.ledgers))
    finally:
        receiver.__exit__(None, None, None)
    for n in range(5):
        executor.execute_sync(function_request(WORK, "work", n))
    time.sleep(0.5)  # a metric export or two fails against the stopped collector
    executor.shutdown()
    ledgers = {ledger.items: ledger for ledger in executor.telemetry.ledgers}
    assert set(ledgers) == {"spans", "log records", "metric data points"}
    for ledger in ledgers.values():
        assert ledger.exported + ledger.lost == ledger.produced
        assert ledger.exported > 0
        assert ledger.lost > 0, ledger.summary()
        assert f"telemetry: {ledger.summary()}" in internal_reports
    assert ledgers["spans"].produced == 40
    assert ledgers["log records"].produced == 10
    assert ledgers["metric data points"].failed > 0
    assert ledgers["spans"].exported <= len(receiver.received.spans())


def _wait(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class _StuckExporter(LogRecordExporter):
    """Blocks every export until released: a user's exporter behind a slow collector."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Wait until released."""
        self.release.wait(10)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        """Let any waiting export go."""
        self.release.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is held here."""
        return True


def test_drops_in_a_processor_the_user_passes_in_reach_stderr(internal_reports: list[str]) -> None:
    """The SDK's own "queue full" warning, logged inside an execution, is reported, not swallowed."""
    exporter = _StuckExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_queue_size=2, max_export_batch_size=1, schedule_delay_millis=10)
    )
    chatty = "import logging\ndef chatty():\n    for i in range(20):\n        logging.warning('x')\n"
    try:
        with RemoteExecutor(FlashConfig(), logger_provider=provider) as executor:
            response = executor.execute_sync(function_request(chatty, "chatty"))
    finally:
        exporter.release.set()
        provider.shutdown()
    assert response.success
    assert any(message.startswith("Queue full, dropping") for message in internal_reports)
    assert "Queue full" not in (response.stdout or "")


def test_a_queued_log_record_keeps_its_ids_but_not_its_context() -> None:
    """What is exported carries the span's ids; the execution's context is not held by the queue."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    processor = BoundedLogRecordProcessor(exporter, BatchSettings(), DeliveryLedger("log records", "memory"))
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    span = NonRecordingSpan(SpanContext(7, 9, False, TraceFlags(TraceFlags.SAMPLED)))
    context = set_value("large", "x" * 1000, set_span_in_context(span))
    provider.get_logger("test").emit(body="a line", context=context)
    provider.force_flush()
    (record,) = exporter.get_finished_logs()
    assert (record.log_record.trace_id, record.log_record.span_id, record.log_record.body) == (7, 9, "a line")
    assert record.log_record.context == Context()
    assert record.resource == provider.resource
    provider.shutdown()


def test_an_executions_log_records_are_queued_with_their_ids_and_lines_but_no_context() -> None:
    """A logged and a printed line reach the exporter with the execution's ids, holding none of its state."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    processor = BoundedLogRecordProcessor(exporter, BatchSettings(), DeliveryLedger("log records", "memory"))
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    code = WORK.replace("    return n", "    print('printed', n)\n    return n")
    with RemoteExecutor(FlashConfig(), logger_provider=provider) as executor:
        response = executor.execute_sync(function_request(code, "work", 3))
    provider.force_flush()
    records = {str(record.log_record.body): record.log_record for record in exporter.get_finished_logs()}
    assert response.success and "working on 3" in (response.stdout or "")
    logged, printed = records["working on 3"], records["printed 3"]
    for record in (logged, printed):
        assert format(record.trace_id, "032x") == response.trace_id
        assert record.context == Context()
    assert dict(printed.attributes or {}) == {"log.iostream": "stdout"}
    provider.shutdown()


def test_a_record_no_queue_of_ours_keeps_keeps_the_context_it_was_emitted_in() -> None:
    """Only a record our queue keeps as it is gets released: another processor's record keeps its context."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with RemoteExecutor(FlashConfig(), logger_provider=provider) as executor:
        response = executor.execute_sync(function_request(WORK, "work", 4))
    (record,) = [r for r in exporter.get_finished_logs() if r.log_record.body == "working on 4"]
    assert response.success and record.log_record.context
    provider.shutdown()


def test_a_released_record_keeps_a_bounded_map_only_when_it_dropped_attributes() -> None:
    """Release drops the context; a map that dropped nothing becomes a plain dict, one that did stays."""
    fits = HandedLogRecord(body="fits", attributes=BoundedAttributes(maxlen=2, attributes={"a": 1}))
    over = HandedLogRecord(body="over", attributes=BoundedAttributes(maxlen=1, attributes={"a": 1, "b": 2}))
    for record in (fits, over):
        record.release()
        assert record.context == Context()
    assert type(fits.attributes) is dict and fits.attributes == {"a": 1}
    assert isinstance(over.attributes, BoundedAttributes) and over.attributes.dropped == 1


def test_a_queued_log_record_keeps_its_attributes_and_how_many_were_dropped() -> None:
    """The exported copy carries the record's attributes, and the count the SDK's bound dropped."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    processor = BoundedLogRecordProcessor(exporter, BatchSettings(), DeliveryLedger("log records", "memory"))
    provider = LoggerProvider(shutdown_on_exit=False, log_record_limits=LogRecordLimits(max_attributes=2))
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("test")
    logger.emit(body="fits", attributes={"a": 1, "b": "two"})
    with pytest.warns(LogRecordDroppedAttributesWarning):
        logger.emit(body="over", attributes={"a": 1, "b": 2, "c": 3})
    provider.force_flush()
    fits, over = exporter.get_finished_logs()
    assert (dict(fits.log_record.attributes or {}), fits.dropped_attributes) == ({"a": 1, "b": "two"}, 0)
    assert (len(over.log_record.attributes or {}), over.dropped_attributes) == (2, 1)
    provider.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork only")
def test_a_forked_child_exports_through_a_thread_of_its_own() -> None:
    """After ``os.fork`` the child's queue has its own export thread: what the child logs is exported."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    batch = BatchSettings(schedule_delay_ms=10)
    processor = BoundedLogRecordProcessor(exporter, batch, DeliveryLedger("log records", "memory"))
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only an exit code
        code = 1
        try:
            provider.get_logger("test").emit(body="from the child")
            exported = _wait(lambda: len(exporter.get_finished_logs()) == 1, timeout_s=10)
            code = 0 if exported and processor.ledger.exported == 1 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    provider.shutdown()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_full_batch_is_exported_at_once_and_a_partial_one_at_the_schedule_delay() -> None:
    """As the SDK's batch processors: a full batch does not wait for the delay; a partial one waits for it."""
    spans = [ReadableSpan("s", SpanContext(1, n, False, TraceFlags(TraceFlags.SAMPLED))) for n in (1, 2, 3)]
    slow, quick = InMemorySpanExporter(), InMemorySpanExporter()
    full = BatchSettings(schedule_delay_ms=60_000, max_export_batch_size=2)
    waiting = BoundedSpanProcessor(slow, full, DeliveryLedger("spans", "memory"))
    waiting.on_end_many(spans[:1])
    time.sleep(0.2)
    assert slow.get_finished_spans() == ()
    waiting.on_end_many(spans[1:])
    assert _wait(lambda: len(slow.get_finished_spans()) == 2)  # one full batch; the third waits
    soon = BatchSettings(schedule_delay_ms=20)
    timed = BoundedSpanProcessor(quick, soon, DeliveryLedger("spans", "memory"))
    timed.on_end_many(spans[:1])
    assert _wait(lambda: len(quick.get_finished_spans()) == 1)
    for processor in (waiting, timed):
        processor.shutdown()
    assert len(slow.get_finished_spans()) == 3  # shutdown exports what was queued
