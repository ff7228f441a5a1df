"""Our OTLP exporters: the stock transports carrying our encoding (otel_flash/telemetry/otlp_exporters.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any, Literal

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_flash.telemetry import otlp_exporters
from otel_flash.telemetry.otlp_exporters import (
    GrpcLogRecordExporter,
    GrpcSpanExporter,
    HttpLogRecordExporter,
    HttpSpanExporter,
)
from tests.otlp_receivers import GrpcReceiver, HttpReceiver

Protocol = Literal["grpc", "http/protobuf"]
HEADERS = {"x-tenant": "flash-tests", "authorization": "Bearer t0ken"}


def test_the_installed_exporters_are_the_release_whose_internals_were_checked() -> None:
    """A new exporter minor release means re-reading the hooks used before moving the pinned version."""
    for package in ("opentelemetry-exporter-otlp-proto-grpc", "opentelemetry-exporter-otlp-proto-http"):
        installed = metadata.version(package).split(".")[:2]
        assert installed == otlp_exporters.CHECKED_EXPORTER_VERSION.split(".")[:2], package


@pytest.fixture(scope="module")
def spans() -> Sequence[ReadableSpan]:
    """A small trace: a server span with attributes and an event, a failed child."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "exporters"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests", "1.0")
    attributes: dict[str, Any] = {"n": 1, "tags": ("a", "b")}
    with (
        tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes),
        tracer.start_as_current_span("child") as child,
    ):
        child.add_event("step", {"done": True})
        child.set_status(StatusCode.ERROR, "it broke")
    return exporter.get_finished_spans()


@pytest.fixture(scope="module")
def records() -> Sequence[ReadableLogRecord]:
    """Two log records, one with a map body."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    provider = LoggerProvider(resource=Resource.create({"service.name": "exporters"}), shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("tests")
    logger.emit(body="a line", severity_number=SeverityNumber.INFO, attributes={"k": "v"})
    logger.emit(body={"map": [1, 2]}, severity_number=SeverityNumber.WARN)
    return exporter.get_finished_logs()


def _exporters(protocol: Protocol, endpoint: str, gzip: bool) -> tuple[Any, Any]:
    if protocol == "grpc":
        compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        options = {"insecure": True, "headers": HEADERS, "compression": compression, "timeout": 5}
        return GrpcSpanExporter(endpoint, **options), GrpcLogRecordExporter(endpoint, **options)
    http_compression = HttpCompression.Gzip if gzip else HttpCompression.NoCompression
    http_options = {"headers": HEADERS, "compression": http_compression, "timeout": 5}
    return (
        HttpSpanExporter(f"{endpoint}/v1/traces", **http_options),
        HttpLogRecordExporter(f"{endpoint}/v1/logs", **http_options),
    )


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_collector_receives_the_stock_encoding_with_the_headers(
    protocol: Protocol, gzip: bool, spans: Sequence[ReadableSpan], records: Sequence[ReadableLogRecord]
) -> None:
    """What a real receiver decodes equals the stock encoders' requests; headers and compression apply."""
    with GrpcReceiver() if protocol == "grpc" else HttpReceiver() as receiver:
        span_exporter, log_exporter = _exporters(protocol, receiver.endpoint, gzip)
        assert span_exporter.export(spans) is SpanExportResult.SUCCESS
        assert log_exporter.export(records) is LogRecordExportResult.SUCCESS
        span_exporter.shutdown()
        log_exporter.shutdown()
    received = receiver.received
    assert received.requests["traces"] == [encode_spans(spans)]
    assert received.requests["logs"] == [encode_logs(records)]
    for signal in ("traces", "logs"):
        assert HEADERS.items() <= received.headers[signal][0].items(), signal


class _UnavailableOnce(trace_service_pb2_grpc.TraceServiceServicer):
    """Answers UNAVAILABLE to the first export, then accepts."""

    def __init__(self) -> None:
        self.calls = 0
        self.accepted: list[Any] = []

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # gRPC name
        self.calls += 1
        if self.calls == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        self.accepted.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_grpc_retries_an_unavailable_collector_on_a_new_channel(spans: Sequence[ReadableSpan]) -> None:
    """UNAVAILABLE makes the stock exporter reconnect and retry; the retry still carries our encoding."""
    servicer = _UnavailableOnce()
    server = grpc.server(ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]  # generated code
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        exporter = GrpcSpanExporter(f"http://127.0.0.1:{port}", insecure=True, timeout=10)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        server.stop(None).wait(5)
    assert servicer.calls == 2
    assert servicer.accepted == [encode_spans(spans)]


@pytest.fixture
def busy_then_ok() -> Iterator[tuple[str, list[int]]]:
    """An HTTP collector answering 503 to its first post and 200 after; the statuses it gave."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = 503 if not answered else 200
            answered.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # base signature
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", answered
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_retries_a_busy_collector(
    busy_then_ok: tuple[str, list[int]], spans: Sequence[ReadableSpan]
) -> None:
    """A 503 is retried with backoff by the stock client, and the retry succeeds."""
    url, answered = busy_then_ok
    exporter = HttpSpanExporter(url, timeout=10)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]  # stock, unannotated
    assert answered == [503, 200]


def test_http_refuses_a_batch_above_the_request_size_limit(spans: Sequence[ReadableSpan]) -> None:
    """max_request_size holds for our bytes as for the stock ones: the batch fails, nothing is posted."""
    with HttpReceiver() as receiver:
        exporter = HttpSpanExporter(f"{receiver.endpoint}/v1/traces", max_request_size=10)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        exporter.shutdown()  # type: ignore[no-untyped-call]  # stock, unannotated
    assert receiver.received.requests["traces"] == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_shut_down_exporter_fails_batches(protocol: Protocol, spans: Sequence[ReadableSpan]) -> None:
    """After shutdown, export answers FAILURE without sending."""
    with GrpcReceiver() if protocol == "grpc" else HttpReceiver() as receiver:
        span_exporter, log_exporter = _exporters(protocol, receiver.endpoint, False)
        span_exporter.shutdown()
        log_exporter.shutdown()
        assert span_exporter.export(spans) is SpanExportResult.FAILURE
    assert receiver.received.requests["traces"] == []
