"""Our OTLP encoding decodes to exactly what the stock encoders build (telemetry/otlp_encoding.py)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import (
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from otel_flash.export_settings import BatchSettings
from otel_flash.telemetry.delivery import BoundedSpanProcessor, DeliveryLedger
from otel_flash.telemetry.otlp_encoding import LogEncoder, SpanEncoder
from otel_flash.telemetry.span_data import span_data
from otel_flash.telemetry.spans import LightTracer

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SCALARS = (
    st.text(max_size=12)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
)
ATTRIBUTE_VALUES = (
    SCALARS
    | st.lists(st.text(max_size=5), max_size=3).map(tuple)
    | st.lists(st.booleans(), max_size=3)
    | st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3)
    | st.lists(st.floats(allow_nan=False), max_size=3)
)
ANY_VALUES = st.recursive(
    st.none() | SCALARS | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
RESOURCES = [
    Resource({"service.name": "one", "host.ids": (1, 2), "ratio": 0.5}),
    Resource({"service.name": "two"}, "https://opentelemetry.io/schemas/1.21.0"),
    Resource({}),
]
SCOPES: list[InstrumentationScope | None] = [
    InstrumentationScope("otel_flash"),
    InstrumentationScope("lib", "1.2.3", "https://schema", {"scope.attr": "x", "n": 3}),
    None,
]


def _spans_request(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    return request


def _logs_request(records: Sequence[ReadableLogRecord]) -> ExportLogsServiceRequest:
    request: ExportLogsServiceRequest = ExportLogsServiceRequest.FromString(LogEncoder().encode(records))
    return request


def _context(span_id: int, *, remote: bool = False, state: TraceState | None = None) -> SpanContext:
    return SpanContext(TRACE_ID, span_id, remote, TraceFlags(TraceFlags.SAMPLED), state)


def _span(name: str, span_id: int, **fields: Any) -> ReadableSpan:
    defaults: dict[str, Any] = {
        "context": _context(span_id),
        "resource": RESOURCES[0],
        "instrumentation_scope": SCOPES[0],
        "start_time": 1_700_000_000_000_000_000 + span_id,
        "end_time": 1_700_000_000_000_500_000 + span_id,
    }
    return ReadableSpan(name=name, **{**defaults, **fields})


def test_every_span_field_decodes_as_the_stock_encoding() -> None:
    """Ids, trace state, parents (none, local, remote), kinds, events, links, status and both times."""
    state = TraceState([("vendor", "value"), ("other", "1")])
    spans = [
        _span("root", 1, kind=SpanKind.SERVER, attributes={"a": "b", "n": 7, "ok": True, "x": 1.5}),
        _span("local child", 2, parent=_context(1), status=Status(StatusCode.ERROR, "it broke")),
        _span("remote parent", 3, parent=_context(9, remote=True), context=_context(3, state=state)),
        _span(
            "with events and links",
            4,
            kind=SpanKind.CLIENT,
            events=[
                Event("first", {"e": "v", "list": (1, 2)}, 1_700_000_000_100_000),
                Event("bare", None, 5),
            ],
            links=[Link(_context(7, remote=True), {"link.attr": 3}), Link(_context(8))],
            status=Status(StatusCode.OK),
        ),
        _span("", 5, kind=SpanKind.PRODUCER, start_time=None, end_time=None),
        _span("consumer", 6, kind=SpanKind.CONSUMER, status=Status(StatusCode.UNSET, "ignored")),
    ]
    assert _spans_request(spans) == encode_spans(spans)


def test_spans_group_by_equal_resource_then_scope_in_first_seen_order() -> None:
    """Equal resources and scopes held in distinct objects share a group, as the stock encoder groups them."""
    equal_resource = Resource({"service.name": "one", "host.ids": (1, 2), "ratio": 0.5})
    equal_scope = InstrumentationScope("otel_flash")
    spans = [
        _span(f"span {index}", index + 1, resource=resource, instrumentation_scope=scope)
        for index, (resource, scope) in enumerate(
            [
                (RESOURCES[1], SCOPES[1]),
                (RESOURCES[0], SCOPES[0]),
                (equal_resource, equal_scope),
                (RESOURCES[0], SCOPES[2]),
                (RESOURCES[2], SCOPES[0]),
                (RESOURCES[1], SCOPES[1]),
                (equal_resource, SCOPES[1]),
            ]
        )
    ]
    assert _spans_request(spans) == encode_spans(spans)
    assert [len(group.scope_spans) for group in _spans_request(spans).resource_spans] == [1, 3, 1]


def test_dropped_counts_of_attributes_events_and_links_are_encoded() -> None:
    """Spans past the SDK's limits carry their dropped counts, on the span and on its events and links."""
    limits = SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits, resource=RESOURCES[0], shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("limits", "0.1")
    links = [Link(_context(11), {"a": 1, "b": 2}), Link(_context(12))]
    with tracer.start_as_current_span("limited", links=links, attributes={"a": 1, "b": 2, "c": 3}) as span:
        span.add_event("one", {"x": 1, "y": 2})
        span.add_event("two")
        with tracer.start_as_current_span("child"):
            pass
    spans = exporter.get_finished_spans()
    assert spans[1].dropped_attributes == 1 and spans[1].dropped_events == 1 and spans[1].dropped_links == 1
    assert _spans_request(spans) == encode_spans(spans)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=10), ATTRIBUTE_VALUES, max_size=6), st.text(max_size=20))
def test_attribute_values_of_every_type_decode_as_the_stock_encoding(
    attributes: dict[str, Any], name: str
) -> None:
    """Strings (any Unicode), booleans, int64s, doubles and arrays of each, on spans, events and links."""
    span = _span(
        name,
        1,
        attributes=attributes,
        events=[Event("event", attributes, 3)],
        links=[Link(_context(2), attributes)],
    )
    assert _spans_request([span]) == encode_spans([span])


@pytest.mark.parametrize(
    "value",
    [2**63, -(2**63) - 1, object(), "\ud800", [1, object()]],
    ids=["above int64", "below int64", "an object", "a lone surrogate", "an array holding an object"],
)
def test_an_attribute_the_stock_encoder_leaves_out_is_left_out(value: Any) -> None:
    """A value that cannot be encoded drops that attribute only, and the rest of the span is exported."""
    span = _span("span", 1, attributes={"before": 1, "bad": value, "after": "kept"})
    request = _spans_request([span])
    assert request == encode_spans([span])
    kept = request.resource_spans[0].scope_spans[0].spans[0].attributes
    assert [pair.key for pair in kept] == ["before", "after"]


def _record(body: Any, **fields: Any) -> ReadableLogRecord:
    resource = fields.pop("resource", RESOURCES[0])
    scope = fields.pop("scope", SCOPES[0])
    limits = fields.pop("limits", LogRecordLimits())
    defaults: dict[str, Any] = {
        "timestamp": 1_700_000_000_000_000_000,
        "observed_timestamp": 1_700_000_000_000_000_123,
        "severity_text": "INFO",
        "severity_number": SeverityNumber.INFO,
    }
    log = LogRecord(body=body, **{**defaults, **fields})
    with warnings.catch_warnings():  # the SDK warns when attributes are dropped; that case is wanted here
        warnings.simplefilter("ignore", LogRecordDroppedAttributesWarning)
        writable = ReadWriteLogRecord(log, resource, scope, limits)
    return ReadableLogRecord(writable.log_record, resource, scope, limits)


def test_every_log_record_field_decodes_as_the_stock_encoding() -> None:
    """Times, severity, bodies of each kind, attributes, trace correlation, event names, resources, scopes."""
    span = NonRecordingSpan(_context(5))
    correlated = set_span_in_context(span)
    records = [
        _record("a line", context=correlated, attributes={"log.iostream": "stdout"}),
        _record(None, severity_number=None, severity_text=None, timestamp=None),
        _record({"map": [1, "two", {"three": b"\x00\xff"}]}, severity_number=SeverityNumber.ERROR),
        _record(b"\x00bytes", scope=SCOPES[1], event_name="flash.event"),
        _record(3.25, resource=RESOURCES[1], scope=SCOPES[2], attributes={"nested": {"k": [1, 2]}}),
        _record(True, resource=Resource({"service.name": "one", "host.ids": (1, 2), "ratio": 0.5})),
        _record("dropped", attributes={"a": 1, "b": 2}, limits=LogRecordLimits(max_attributes=1)),
    ]
    assert records[-1].dropped_attributes == 1
    assert _logs_request(records) == encode_logs(records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_VALUES, st.dictionaries(st.text(max_size=8), ANY_VALUES, max_size=4))
def test_log_bodies_and_attributes_of_every_type_decode_as_the_stock_encoding(
    body: Any, attributes: Any
) -> None:
    """Any value a log record may carry (maps, arrays, bytes, None, nested) in its body and attributes."""
    record = _record(body, attributes=attributes)
    assert _logs_request([record]) == encode_logs([record])


def test_an_empty_batch_is_an_empty_request() -> None:
    """No spans or records: an empty request, as the stock encoders' serialization."""
    assert SpanEncoder().encode([]) == encode_spans([]).SerializeToString() == b""
    assert LogEncoder().encode([]) == encode_logs([]).SerializeToString() == b""


def test_encodings_kept_between_batches_follow_each_object() -> None:
    """An encoder used for many batches still encodes each batch's own resources and scopes."""
    encoder = SpanEncoder()
    for index, resource in enumerate([*RESOURCES, Resource({"service.name": "new"}), *RESOURCES]):
        spans = [_span("s", index + 1, resource=resource, instrumentation_scope=SCOPES[index % 3])]
        assert ExportTraceServiceRequest.FromString(encoder.encode(spans)) == encode_spans(spans)


def test_a_light_span_reads_as_the_sdk_span_it_is() -> None:
    """What reaches the export queue: its SDK properties are its data; it encodes as stock encoders do."""
    exporter = InMemorySpanExporter()
    processor = BoundedSpanProcessor(exporter, BatchSettings(), DeliveryLedger("spans", "memory"))
    tracer = LightTracer(TracerProvider(resource=RESOURCES[0], shutdown_on_exit=False), (processor,))
    caller = set_span_in_context(NonRecordingSpan(_context(1, remote=True)))
    root = tracer.start_span("flash.execute", caller, SpanKind.SERVER, {"faas.trigger": "http", "n": 2})
    call = tracer.start_span("flash.function.call", set_span_in_context(root), attributes={"code": "hello"})
    call.record_exception(ValueError("bad input"))
    call.set_status(Status(StatusCode.ERROR, "bad input"))
    call.end()
    root.end()
    processor.force_flush()
    finished = exporter.get_finished_spans()
    assert [span.name for span in finished] == ["flash.execute", "flash.function.call"]
    for span in finished:
        data = span_data(span)
        assert (span.context, span.parent, span.name, span.kind, span.start_time, span.end_time) == data[:6]
        assert (dict(span.attributes or {}), list(span.events), span.status) == (
            data.attributes,
            list(data.events),
            data.status,
        )
        assert (span.resource, span.instrumentation_scope, span.links) == (data.resource, data.scope, ())
        assert json.loads(span.to_json())["name"] == span.name
    assert _spans_request(finished) == encode_spans(finished)
    processor.shutdown()
