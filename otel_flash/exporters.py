"""Exporters, processors and the metric reader built from :class:`ExportSettings`.

Every value the SDK exporters would otherwise read from ``OTEL_*`` variables
themselves (endpoint, timeout, headers, compression, insecure) is passed
explicitly, so the precedence of :class:`~otel_flash.FlashConfig` holds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlparse

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from otel_flash.delivery import BoundedLogRecordProcessor, BoundedSpanProcessor, DeliveryLedger
from otel_flash.export import ExportSettings, Signal, SignalExport

if TYPE_CHECKING:
    import grpc
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression


@dataclass(frozen=True, slots=True)
class ExportPipeline:
    """What :func:`build_pipeline` made: attach each part to its provider."""

    span_processor: SpanProcessor | None = None
    log_processor: LogRecordProcessor | None = None
    metric_reader: MetricReader | None = None
    ledgers: tuple[DeliveryLedger, ...] = ()


def build_pipeline(settings: ExportSettings, console: TextIO | None = None) -> ExportPipeline:
    """Processors and a reader for every enabled signal; ``console`` receives ``console`` exports.

    ``console`` defaults to the process's real stdout (``sys.__stdout__``), never a
    user's captured one.
    """
    out = console if console is not None else (sys.__stdout__ or sys.stdout)
    spans = logs = None
    ledgers: list[DeliveryLedger] = []
    if settings.enabled("traces"):
        ledger = DeliveryLedger("spans", _destination(settings.traces, "traces"))
        spans = BoundedSpanProcessor(build_span_exporter(settings.traces, out), settings.span_batch, ledger)
        ledgers.append(ledger)
    if settings.enabled("logs"):
        ledger = DeliveryLedger("log records", _destination(settings.logs, "logs"))
        exporter = build_log_exporter(settings.logs, out)
        logs = BoundedLogRecordProcessor(exporter, settings.log_batch, ledger)
        ledgers.append(ledger)
    reader = None
    if settings.enabled("metrics"):
        reader = PeriodicExportingMetricReader(
            build_metric_exporter(settings.metrics, out),
            export_interval_millis=settings.metric_interval_ms,
            export_timeout_millis=settings.metric_timeout_ms,
        )
    return ExportPipeline(spans, logs, reader, tuple(ledgers))


def build_span_exporter(target: SignalExport, console: TextIO) -> SpanExporter:
    """The span exporter ``target`` names."""
    if target.exporter == "console":
        return ConsoleSpanExporter(out=console)
    url = target.url("traces")
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return GrpcSpans(
            url,
            _insecure(url),
            headers=dict(target.headers),
            timeout=target.timeout_s,
            compression=_grpc_compression(target),
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    return HttpSpans(
        url, headers=dict(target.headers), timeout=target.timeout_s, compression=_http_compression(target)
    )


def build_log_exporter(target: SignalExport, console: TextIO) -> LogRecordExporter:
    """The log record exporter ``target`` names."""
    if target.exporter == "console":
        return ConsoleLogRecordExporter(out=console)
    url = target.url("logs")
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs

        return GrpcLogs(
            url,
            _insecure(url),
            headers=dict(target.headers),
            timeout=target.timeout_s,
            compression=_grpc_compression(target),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs

    return HttpLogs(
        url, headers=dict(target.headers), timeout=target.timeout_s, compression=_http_compression(target)
    )


def build_metric_exporter(target: SignalExport, console: TextIO) -> MetricExporter:
    """The metric exporter ``target`` names."""
    if target.exporter == "console":
        return ConsoleMetricExporter(out=console)
    url = target.url("metrics")
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        return GrpcMetrics(
            url,
            _insecure(url),
            headers=dict(target.headers),
            timeout=target.timeout_s,
            compression=_grpc_compression(target),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

    return HttpMetrics(
        url, headers=dict(target.headers), timeout=target.timeout_s, compression=_http_compression(target)
    )


def _destination(target: SignalExport, signal: Signal) -> str:
    return "the console" if target.exporter == "console" else target.url(signal)


def _insecure(url: str) -> bool:
    """Plain text unless the endpoint says ``https``."""
    return urlparse(url).scheme != "https"


def _grpc_compression(target: SignalExport) -> grpc.Compression:
    import grpc

    return grpc.Compression.Gzip if target.compression == "gzip" else grpc.Compression.NoCompression


def _http_compression(target: SignalExport) -> HttpCompression:
    from opentelemetry.exporter.otlp.proto.http import Compression

    return Compression.Gzip if target.compression == "gzip" else Compression.NoCompression
