"""Everything exported passes redaction last: what user code sets on spans arrives as ***, in both modes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.export_settings import BatchSettings, ExportSettings
from otel_flash.redaction import Redactor
from otel_flash.telemetry.redacting import RedactingSpanExporter, redact_log_record, redact_span
from otel_flash.testing import capture_telemetry
from tests.otlp_receivers import GrpcReceiver, Received
from tests.requests import function_request

SECRET = "sk-live-0123456789abcdef"
# In a child the current span is the worker's (not settable there) and the global tracer is the
# child's; in-process the global tracer is whatever the host installed: each mode pins what it can.
USER_CODE = f"""
import logging
from opentelemetry import trace

def leak():
    current = trace.get_current_span()
    current.set_attribute("user.key", "{SECRET}")
    current.add_event("fetched", {{"url": "https://h/data?access_token=tok111aaa&page=2"}})
    current.set_status(trace.StatusCode.ERROR, "AuthoRization: Bearer tok333ccc")
    with trace.get_tracer("user").start_as_current_span("user.span") as own:
        own.set_attribute("db.url", "postgres://bob:tok222bbb@db/x")
        own.add_event("called", {{"header": "AuthoRization: Bearer tok333ccc"}})
        own.set_status(trace.StatusCode.ERROR, "failed with {SECRET}")
        logging.getLogger("user").warning("sent", extra={{"payload": {{"api": "https://u:tok444ddd@h"}}}})
    return 1
"""
LEAKED = (SECRET, "tok111aaa", "tok222bbb", "tok333ccc", "tok444ddd")


def _span(name: str, **attributes: Any) -> ReadableSpan:
    capture = capture_telemetry()
    with capture.tracer_provider.get_tracer("t").start_as_current_span(name) as span:
        span.set_attributes(attributes)
        span.add_event("event", {"n": 1})
    return capture.spans()[0]


def _record(body: str, **attributes: Any) -> ReadableLogRecord:
    capture = capture_telemetry()
    handler = LoggingHandler(logger_provider=capture.logger_provider)
    handler.emit(logging.makeLogRecord({"msg": body, "levelno": logging.WARNING, **attributes}))
    return capture.log_records()[0]


def test_spans_and_records_with_nothing_to_hide_are_handed_on_untouched() -> None:
    """No copy is made when nothing matches: the exporter gets the very same objects."""
    redact = Redactor({SECRET})
    span = _span("work", **{"http.route": "/execute", "n": 3, "ok": True, "tags": ("a", "b")})
    record = _record("processed %s items", items={"k": [1, 2]}, raw=b"bytes")
    assert redact_span(span, redact) is span
    assert redact_log_record(record, redact) is record


def test_only_what_changes_is_copied_and_redacted() -> None:
    """A span with a secret attribute is copied with ***; its ids, times and other attributes stay."""
    redact = Redactor({SECRET})
    span = _span("work", key=SECRET, route="/execute")
    redacted = redact_span(span, redact)
    assert redacted is not span
    assert dict(redacted.attributes or {}) == {"key": "***", "route": "/execute"}
    assert redacted.events[0] is span.events[0]
    assert (redacted.context, redacted.start_time) == (span.context, span.start_time)
    assert dict(span.attributes or {})["key"] == SECRET  # what other processors saw is not changed


def test_in_a_batch_only_the_span_with_a_secret_is_redacted() -> None:
    """The exporter hands on a batch's clean spans as they are, and a copy with *** of the one that leaks."""
    exporter = InMemorySpanExporter()
    clean, leaking, other = _span("a", route="/x"), _span("b", key=SECRET), _span("c", n=1)
    RedactingSpanExporter(exporter, Redactor({SECRET})).export([clean, leaking, other])
    first, second, third = exporter.get_finished_spans()
    assert first is clean and third is other
    assert second is not leaking and dict(second.attributes or {}) == {"key": "***"}
    RedactingSpanExporter(exporter, Redactor({SECRET})).export([clean, other])
    fourth, fifth = exporter.get_finished_spans()[3:]
    assert fourth is clean and fifth is other


def test_log_record_values_of_every_shape_are_redacted() -> None:
    """Dict, list, tuple and bytes attribute values of a log record are redacted at export."""
    redact = Redactor({SECRET})
    record = _record(
        f"body {SECRET}",
        nested={"url": "https://u:p4ss@h", "deeper": [f"x {SECRET}"]},
        listed=[f"k={SECRET}"],
        raw=f"Authorization: Bearer {SECRET}".encode(),
    )
    redacted = redact_log_record(record, redact)
    log = redacted.log_record
    assert log.body == "body ***"
    attributes = dict(log.attributes or {})
    assert attributes["nested"] == {"url": "https://***@h", "deeper": ("x ***",)}  # the SDK keeps tuples
    assert list(attributes["listed"]) == ["k=***"]
    assert attributes["raw"] == b"Authorization: ***"


def test_wrapper_passes_flush_and_shutdown_on() -> None:
    """The span wrapper exports redacted spans and forwards flush and shutdown to the wrapped exporter."""
    inner = InMemorySpanExporter()
    wrapper = RedactingSpanExporter(inner, Redactor({SECRET}))
    wrapper.export([_span("work", key=SECRET)])
    assert wrapper.force_flush(1000) is True
    assert dict(inner.get_finished_spans()[0].attributes or {}) == {"key": "***"}
    wrapper.shutdown()
    assert wrapper.export([_span("late")]) is SpanExportResult.FAILURE  # the wrapped one is shut down


def _exported_text(received: Received) -> str:
    return "\n".join(str(request) for signal in ("traces", "logs") for request in received.requests[signal])


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_what_user_code_sets_on_spans_is_exported_redacted(isolation: Isolation) -> None:
    """Attributes, events and status descriptions set by user code reach the collector with ***."""
    with GrpcReceiver() as receiver:
        batch = BatchSettings(schedule_delay_ms=50)
        export = ExportSettings.otlp(receiver.endpoint, "grpc", span_batch=batch)
        config = FlashConfig(isolation=isolation, secret_values=frozenset({SECRET})).replace(export=export)
        with RemoteExecutor(config) as executor:
            response = executor.execute_sync(function_request(USER_CODE, "leak"))
        assert response.success, response.error
        assert receiver.received.wait_for(lambda r: "flash.execute" in r.span_names() and bool(r.logs()))
    spans = {span.name: span for span in receiver.received.spans()}
    text = _exported_text(receiver.received)
    if isolation == "thread":
        assert spans["flash.function.call"].attributes["user.key"] == "***"
        assert "access_token=***&page=2" in text
    else:
        assert spans["user.span"].attributes["db.url"] == "postgres://***@db/x"
        assert spans["user.span"].status_code == StatusCode.ERROR.value
        assert "failed with ***" in text
    assert "AuthoRization: ***" in text and "https://***@h" in text
    assert [leaked for leaked in LEAKED if leaked in text] == []
