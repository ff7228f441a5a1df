"""The OTLP span and log record exporters otel_flash builds: the stock transports, our encoding.

Each class here is the stock OTLP exporter of its signal and protocol
(``opentelemetry-exporter-otlp-proto-grpc`` / ``-http``), so endpoint, headers,
compression, timeout, TLS and client certificates (arguments and every
``OTEL_EXPORTER_OTLP_*`` variable they read), retries with backoff, reconnection
and the exporters' own metrics behave as they do stock. Only the request's bytes
differ in how they are made: :mod:`otel_flash.telemetry.otlp_encoding` writes
them directly instead of building ``opentelemetry-proto`` objects, and they are
sent as they are (gRPC: a unary call whose request serializer is the identity;
HTTP: the body).

This reaches into the stock exporters below their public API, here and nowhere
else: the gRPC exporters' ``_translate_data`` hook and their channel and stub
(``_initialize_channel_and_stub``, ``_channel``, ``_client``), and the HTTP
exporters' client, size limit, shutdown flag and metrics, whose ``export`` is
re-stated with our encoding. ``tests/test_otlp_exporters.py`` pins the release
this was checked against (:data:`CHECKED_EXPORTER_VERSION`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as _GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as _GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as _HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _HttpSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_flash._internal import internal_logger
from otel_flash.telemetry.otlp_encoding import LogEncoder, SpanEncoder

__all__ = [
    "CHECKED_EXPORTER_VERSION",
    "GrpcLogRecordExporter",
    "GrpcSpanExporter",
    "HttpLogRecordExporter",
    "HttpSpanExporter",
]

CHECKED_EXPORTER_VERSION = "1.45.1"
"""The opentelemetry-exporter-otlp-proto-grpc and -http release whose internals were checked here."""

_Result = TypeVar("_Result", SpanExportResult, LogRecordExportResult)


class _EncodedStub:
    """A service stub whose ``Export`` takes a request already encoded."""

    def __init__(self, channel: Any, service: Any, response: Any) -> None:
        self.Export = channel.unary_unary(  # the name the stock exporters call
            f"/{service.full_name}/Export",
            request_serializer=None,  # the request is bytes already
            response_deserializer=response.FromString,
        )


class _EncodedGrpc:
    """Makes a stock gRPC exporter send our encoding (put first among the bases).

    Overrides two hooks of the stock ``OTLPExporterMixin``: ``_translate_data`` (the
    request: our bytes) and ``_initialize_channel_and_stub`` (also called when the
    exporter reconnects: the stub sends the bytes as they are).
    """

    _encoder: SpanEncoder | LogEncoder
    _service: Any  # the collector service's descriptor
    _response: Any  # its response message class
    _channel: Any
    _client: Any

    def _translate_data(self, data: Sequence[Any]) -> bytes:
        return self._encoder.encode(data)

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[misc]  # the stock exporter's, next in the MRO
        self._client = _EncodedStub(self._channel, self._service, self._response)


class GrpcSpanExporter(_EncodedGrpc, _GrpcSpanExporter):  # type: ignore[misc]  # _translate_data returns bytes
    """The stock OTLP/gRPC span exporter sending our encoding (same arguments)."""

    _service = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]
    _response = trace_service_pb2.ExportTraceServiceResponse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._encoder = SpanEncoder()
        super().__init__(*args, **kwargs)


class GrpcLogRecordExporter(_EncodedGrpc, _GrpcLogExporter):  # type: ignore[misc]  # _translate_data returns bytes
    """The stock OTLP/gRPC log record exporter sending our encoding (same arguments)."""

    _service = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"]
    _response = logs_service_pb2.ExportLogsServiceResponse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._encoder = LogEncoder()
        super().__init__(*args, **kwargs)


class HttpSpanExporter(_HttpSpanExporter):
    """The stock OTLP/HTTP (protobuf) span exporter sending our encoding (same arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._encoder = SpanEncoder()
        super().__init__(*args, **kwargs)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode and post one batch, as the stock exporter does."""
        return _post(self, spans, self._encoder.encode, SpanExportResult.SUCCESS, SpanExportResult.FAILURE)


class HttpLogRecordExporter(_HttpLogExporter):
    """The stock OTLP/HTTP (protobuf) log record exporter sending our encoding (same arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._encoder = LogEncoder()
        super().__init__(*args, **kwargs)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Encode and post one batch, as the stock exporter does."""
        ok, failed = LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE
        return _post(self, batch, self._encoder.encode, ok, failed)


def _post(
    exporter: Any, batch: Sequence[Any], encode: Callable[[Any], bytes], ok: _Result, failed: _Result
) -> _Result:
    """The stock HTTP exporters' ``export`` with ``encode`` making the body."""
    if exporter._shutdown:
        internal_logger().warning("telemetry: the exporter is shut down; a batch of %d ignored", len(batch))
        return failed
    with exporter._metrics.export_operation(len(batch)) as result:
        try:
            body = encode(batch)
        except Exception as error:
            internal_logger().error("telemetry: failed to encode a batch of %d: %s", len(batch), error)
            result.error = error
            return failed
        limit = exporter._max_request_size
        if 0 < limit < len(body):
            internal_logger().warning(
                "telemetry: dropping a batch: %d bytes exceed max_request_size %d", len(body), limit
            )
            result.error = RequestPayloadTooLargeError(f"request size {len(body)} exceeds {limit} bytes")
            return failed
        answer = exporter._client.export(body)
        if not answer.success:
            result.error = answer.error
            status = answer.status_code
            result.error_attrs = {"http.response.status_code": status} if status is not None else None
            return failed
    return ok
