"""The export process: what a collector receives through it is what the worker would have sent itself."""

from __future__ import annotations

import dataclasses
import marshal
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordDroppedAttributesWarning, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace.span import NonRecordingSpan

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.export_settings import BatchSettings, ExportSettings, Signal
from otel_flash.telemetry.export_process import CHILD_MODULE, ExportBatch
from otel_flash.telemetry.exporters import build_pipeline
from otel_flash.telemetry.flat import (
    OWNERS_LIMIT,
    Owners,
    OwnerTable,
    flat_record,
    flat_span,
    rebuilt_record,
    rebuilt_span,
)
from otel_flash.telemetry.otlp_encoding import LogEncoder, SpanEncoder
from tests.otlp_receivers import GrpcReceiver, HttpReceiver, Received
from tests.requests import function_request

SECRET = "hunter2-secret-value"
WORK = f"""
import logging
from opentelemetry import trace

class Text(str):
    pass

def work(n, odd=False):
    span = trace.get_current_span()
    span.set_attribute("user.token", "{SECRET}")
    if odd:
        span.set_attribute("user.odd", Text("a str of a type of its own"))
    logging.getLogger("user").warning("working on %d with {SECRET}", n)
    return n * 2
"""


def _round_trip(items: list[Any], flatten: Any, rebuild: Any) -> list[Any]:
    """``items`` flattened, carried by marshal as the pipe carries them, and rebuilt."""
    owners, table = Owners(), OwnerTable()
    rebuilt = []
    for start in range(0, len(items), 7):  # several messages: owners are described once, then numbered
        flat = [flatten(item, owners) for item in items[start : start + 7]]
        restart, new = owners.take_new()
        sent = ExportBatch(kind="spans", restart=restart, owners=new, items=flat)
        batch = marshal.loads(marshal.dumps(dict(sent)))
        table.learn(batch["restart"], batch["owners"])
        rebuilt += [rebuild(item, table) for item in batch["items"]]
    return rebuilt


def _varied_spans() -> list[Any]:
    """SDK spans with every field the encoder writes: values of each type, events, links, status, limits."""
    exporter = InMemorySpanExporter()
    for number in range(3):
        resource = Resource({"service.name": f"svc-{number}", "host.cores": number})
        provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_attributes=6))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer(f"scope-{number}", "1.2", schema_url="https://schema/1")
        remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("vendor", "v1")]))
        parent = set_span_in_context(NonRecordingSpan(remote))
        with tracer.start_as_current_span("root", context=parent, kind=SpanKind.SERVER) as root:
            values: dict[str, Any] = {"s": "text", "i": -7, "f": 2.5, "b": True}
            values.update({"seq": ("a", "b"), "ints": [1, 2]})
            root.set_attributes(values)
            root.set_attribute("dropped", "past the limit")
            root.add_event("started", {"step": 1, "what": "event"})
            with tracer.start_as_current_span("child", links=[Link(remote, {"why": "link"})]) as child:
                child.set_status(Status(StatusCode.ERROR, "it broke"))
                child.record_exception(ValueError("bad value"))
        for kind in SpanKind:
            tracer.start_span(f"kind-{kind.name}", kind=kind).end()
    return list(exporter.get_finished_spans())


def test_rebuilt_spans_encode_to_the_bytes_of_the_originals() -> None:
    """Every span the export process rebuilds encodes to exactly what the worker would have sent."""
    spans = _varied_spans()
    rebuilt = _round_trip(spans, flat_span, rebuilt_span)
    assert SpanEncoder().encode(rebuilt) == SpanEncoder().encode(spans)
    assert [span.name for span in rebuilt] == [span.name for span in spans]
    assert any(span.dropped_attributes for span in rebuilt)  # the count survives the trip


def test_rebuilt_log_records_encode_to_the_bytes_of_the_originals() -> None:
    """Bodies of each type, severities, event names, ids and dropped counts survive the trip."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    provider = LoggerProvider(Resource({"service.name": "logs"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    bodies: list[Any] = ["text", b"\x00bytes", 42, 1.5, True, None, ["a", 1], {"k": {"nested": [1, 2]}}]
    for number, body in enumerate(bodies):
        logger = provider.get_logger(f"logger-{number % 3}", "0.1")
        logger.emit(
            body=body,
            severity_number=list(SeverityNumber)[number],
            severity_text=f"LEVEL{number}" if number % 2 else None,
            attributes={"n": number, "word": "x" * number},
            event_name="an.event" if number == 3 else None,
            timestamp=1_700_000_000_000_000_000 + number,
        )
    limited = LoggerProvider(
        Resource({"service.name": "limited"}), log_record_limits=LogRecordLimits(max_attributes=1)
    )
    limited.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with pytest.warns(LogRecordDroppedAttributesWarning):
        limited.get_logger("limited").emit(body="few attributes", attributes={"a": 1, "b": 2, "c": 3})
    records = list(exporter.get_finished_logs())
    rebuilt = _round_trip(records, flat_record, rebuilt_record)
    assert LogEncoder().encode(rebuilt) == LogEncoder().encode(records)


def test_a_new_process_is_told_every_owner_again() -> None:
    """Items queued for a process that ended are rebuilt by its successor: every owner is described again."""
    spans = _varied_spans()
    owners = Owners()
    flat = [flat_span(span, owners) for span in spans]
    OwnerTable().learn(*owners.take_new())  # the first process
    assert owners.take_new() == (False, [])  # nothing new to tell it
    owners.describe_again()
    restart, new = owners.take_new()
    successor = OwnerTable()
    successor.learn(restart, new)
    assert restart
    assert SpanEncoder().encode([rebuilt_span(item, successor) for item in flat]) == SpanEncoder().encode(
        spans
    )


def test_owners_past_the_limit_are_exported_by_the_worker() -> None:
    """Past ``OWNERS_LIMIT`` resources and scopes a new one is not numbered: marshal refuses its items'
    batch, and the worker rebuilds them from its own table, to the same bytes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "many"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for number in range(OWNERS_LIMIT + 100):
        provider.get_tracer(f"scope-{number}").start_span("one").end()
    spans = list(exporter.get_finished_spans())
    owners = Owners()
    flat = [flat_span(span, owners) for span in spans]
    assert len(owners.owners) == OWNERS_LIMIT + 1  # no scope, the resource, then scopes up to the limit
    with pytest.raises(ValueError, match="unmarshallable"):
        marshal.dumps(flat)
    rebuilt = [rebuilt_span(item, owners) for item in flat]
    assert SpanEncoder().encode(rebuilt) == SpanEncoder().encode(spans)


# -- end to end -----------------------------------------------------------------------------------


def _export_children() -> set[int]:
    """The pids of export processes this process started and that still run.

    Tests compare it with its value before they start: an earlier test's executor shut
    down against a dead collector may still be ending its own.
    """
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and CHILD_MODULE.encode() in command and stat[0] != "Z":
            found.add(int(entry.name))
    return found


def _executor(endpoint: str) -> RemoteExecutor:
    export = ExportSettings.otlp(
        endpoint,
        span_batch=BatchSettings(schedule_delay_ms=50),
        log_batch=BatchSettings(schedule_delay_ms=50),
        process=True,
    )
    config = FlashConfig(service_name="through-a-process", secret_values=frozenset({SECRET}))
    return RemoteExecutor(config.replace(export=export))


def _arrived(received: Received, n: int) -> bool:
    return f"working on {n} with ***" in {str(log.body) for log in received.logs()} and any(
        span.name == "flash.function.call" and span.attributes.get("code.function.name") == "work"
        for span in received.spans()
    )


def test_spans_and_records_go_through_a_process_of_their_own_redacted() -> None:
    """With ``process=True`` an export process, at the lowest CPU priority, sends the execution's spans
    and records, secrets hidden, and ends when the executor shuts down."""
    before = _export_children()
    with GrpcReceiver() as receiver:
        executor = _executor(receiver.endpoint)
        try:
            response = executor.execute_sync(function_request(WORK, "work", 21))
            assert response.success, response.error
            assert receiver.received.wait_for(lambda r: _arrived(r, 21))
            (child,) = _export_children() - before
            niceness = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[16])
            assert niceness == 19  # it takes only the CPU the worker leaves
        finally:
            executor.shutdown()
        assert not _export_children() - before
    call = next(span for span in receiver.received.spans() if span.name == "flash.function.call")
    log = next(log for log in receiver.received.logs() if "working on 21" in str(log.body))
    assert call.attributes["user.token"] == "***"
    assert (log.trace_id, log.span_id) == (call.trace_id, call.span_id)
    assert log.resource["service.name"] == call.resource["service.name"] == "through-a-process"


def test_a_batch_marshal_cannot_carry_is_exported_by_the_worker() -> None:
    """A value of a type of its own (a ``str`` subclass) is sent by the worker's exporter instead."""
    with GrpcReceiver() as receiver, _executor(receiver.endpoint) as executor:
        response = executor.execute_sync(function_request(WORK, "work", 5, odd=True))
        assert response.success, response.error
        assert receiver.received.wait_for(lambda r: _arrived(r, 5))
    call = next(span for span in receiver.received.spans() if span.name == "flash.function.call")
    assert call.attributes["user.odd"] == "a str of a type of its own"


def test_a_killed_export_process_is_reported_and_the_worker_exports_itself(
    internal_reports: list[str],
) -> None:
    """Killing the export process loses at most the batch it held; it is reported once, later batches
    are sent by the worker, and executions never notice."""
    before = _export_children()
    with GrpcReceiver() as receiver, _executor(receiver.endpoint) as executor:
        assert executor.execute_sync(function_request(WORK, "work", 1)).success
        assert receiver.received.wait_for(lambda r: _arrived(r, 1))
        (child,) = _export_children() - before
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not any("export process" in message for message in internal_reports):
            response = executor.execute_sync(function_request(WORK, "work", 2))
            assert response.success, response.error
            assert time.monotonic() < deadline, "the process's end was never reported"
            time.sleep(0.1)
        assert executor.execute_sync(function_request(WORK, "work", 3)).success
        assert receiver.received.wait_for(lambda r: _arrived(r, 3))
    reports = [message for message in internal_reports if "export process" in message]
    assert len(reports) == 1
    assert "exporting from the worker's own threads" in reports[0]


def test_serve_defaults_to_the_export_process_and_the_variable_turns_it_off() -> None:
    """``FLASH_EXPORT_PROCESS`` wins; unset, the caller's default applies (``serve`` passes True)."""
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert ExportSettings.from_environ(endpoint).process is False
    assert ExportSettings.from_environ(endpoint, process=True).process is True
    off = ExportSettings.from_environ({**endpoint, "FLASH_EXPORT_PROCESS": "0"}, process=True)
    assert off.process is False
    assert dataclasses.replace(off, process=True).process is True


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork only")
def test_a_forked_child_exports_through_a_process_of_its_own() -> None:
    """After ``os.fork`` the child starts its own export process; the parent's keeps working and ends
    when the parent shuts down."""
    before = _export_children()
    with HttpReceiver() as receiver:  # a gRPC server in this process would not survive the fork in the child
        batch = BatchSettings(schedule_delay_ms=10)
        export = ExportSettings.otlp(
            receiver.endpoint, "http/protobuf", signals=("logs",), log_batch=batch, process=True
        )
        logs_only: tuple[Signal, ...] = ("logs",)
        pipeline = build_pipeline(export, signals=logs_only)
        assert pipeline.log_processor is not None
        provider = LoggerProvider(Resource({"service.name": "forking"}), shutdown_on_exit=False)
        provider.add_log_record_processor(pipeline.log_processor)
        logger = provider.get_logger("test")
        logger.emit(body="before the fork")
        assert receiver.received.wait_for(lambda r: "before the fork" in _bodies(r))
        pid = os.fork()
        if pid == 0:  # the child: no pytest from here on, only an exit code
            code = 1
            try:
                logger.emit(body="from the child")
                code = 0 if provider.force_flush() else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        logger.emit(body="after the fork")
        assert receiver.received.wait_for(lambda r: {"from the child", "after the fork"} <= _bodies(r))
        provider.shutdown()
        assert not _export_children() - before


def _bodies(received: Received) -> set[str]:
    return {str(log.body) for log in received.logs()}
