"""Exporters, processors and the metric reader built from :class:`ExportSettings`.

Every value the SDK exporters would otherwise read from ``OTEL_*`` variables
themselves (endpoint, timeout, headers, compression, insecure) is passed
explicitly, so the precedence of :class:`~otel_flash.FlashConfig` holds.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
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

from otel_flash.export_settings import ExportSettings, Signal, SignalExport
from otel_flash.redaction import Redactor
from otel_flash.telemetry.delivery import (
    BoundedLogRecordProcessor,
    BoundedSpanProcessor,
    CountingMetricExporter,
    DeliveryLedger,
)
from otel_flash.telemetry.durations import PhaseDurations, merging_phase_durations
from otel_flash.telemetry.export_process import ExportProcess, ProcessLogRecordExporter, ProcessSpanExporter
from otel_flash.telemetry.redacting import RedactingLogRecordExporter, RedactingSpanExporter

_E = TypeVar("_E", SpanExporter, LogRecordExporter)

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
    durations: PhaseDurations | None = None  # what the metric reader's exporter adds to each export


def build_pipeline(
    settings: ExportSettings,
    console: TextIO | None = None,
    redact: Redactor | None = None,
    signals: Collection[Signal] = ("traces", "logs", "metrics"),
) -> ExportPipeline:
    """Processors and a reader for every enabled signal among ``signals`` (the ones a
    provider will take: a part built and never attached would run its export thread for
    nothing); ``console`` receives ``console`` exports.

    ``console`` defaults to the process's real stdout (``sys.__stdout__``), never a
    user's captured one. Every exporter is wrapped to redact what it exports (``redact``,
    default: URL credentials and ``Authorization`` values only).
    """
    redact = redact if redact is not None else Redactor()
    out = console if console is not None else (sys.__stdout__ or sys.stdout)
    spans = logs = None
    ledgers: list[DeliveryLedger] = []
    process = _export_process(settings, redact, signals)
    if "traces" in signals and settings.enabled("traces"):
        ledger = DeliveryLedger("spans", _destination(settings.traces, "traces"))
        traces = settings.traces
        exported = _through(
            process,
            traces,
            ProcessSpanExporter,
            lambda: RedactingSpanExporter(build_span_exporter(traces, out), redact),
        )
        spans = BoundedSpanProcessor(exported, settings.span_batch, ledger)
        ledgers.append(ledger)
    if "logs" in signals and settings.enabled("logs"):
        ledger = DeliveryLedger("log records", _destination(settings.logs, "logs"))
        target = settings.logs
        exporter = _through(
            process,
            target,
            ProcessLogRecordExporter,
            lambda: RedactingLogRecordExporter(build_log_exporter(target, out), redact),
        )
        logs = BoundedLogRecordProcessor(exporter, settings.log_batch, ledger)
        ledgers.append(ledger)
    reader = durations = None
    if "metrics" in signals and settings.enabled("metrics"):
        ledger = DeliveryLedger("metric data points", _destination(settings.metrics, "metrics"))
        counted = CountingMetricExporter(build_metric_exporter(settings.metrics, out), ledger)
        merging, durations = merging_phase_durations(counted)
        reader = PeriodicExportingMetricReader(
            merging,
            export_interval_millis=settings.metric_interval_ms,
            export_timeout_millis=settings.metric_timeout_ms,
        )
        ledgers.append(ledger)
    return ExportPipeline(spans, logs, reader, tuple(ledgers), durations)


def _export_process(
    settings: ExportSettings, redact: Redactor, signals: Collection[Signal]
) -> ExportProcess | None:
    """The export process of the OTLP span and log record exporters, when ``settings.process`` asks."""
    if not settings.process:
        return None
    traces, logs = (
        settings.signal(signal)
        if signal in signals and settings.enabled(signal) and settings.signal(signal).exporter == "otlp"
        else None
        for signal in ("traces", "logs")
    )
    return ExportProcess(traces, logs, redact) if traces is not None or logs is not None else None


def _through(
    process: ExportProcess | None, target: SignalExport, through: Any, local: Callable[[], _E]
) -> _E:
    """What an export queue hands its batches: ``through`` the export process, or the worker's own
    exporter (``local`` makes it; the process's exporter makes it too, if it ever needs it)."""
    if process is not None and target.exporter == "otlp":
        exporter: _E = through(process, local)
        return exporter
    return local()


def build_span_exporter(target: SignalExport, console: TextIO) -> SpanExporter:
    """The span exporter ``target`` names."""
    if target.exporter == "console":
        return ConsoleSpanExporter(out=console)
    exporter: SpanExporter = _otlp_exporter(target, "traces")
    return exporter


def build_log_exporter(target: SignalExport, console: TextIO) -> LogRecordExporter:
    """The log record exporter ``target`` names."""
    if target.exporter == "console":
        return ConsoleLogRecordExporter(out=console)
    exporter: LogRecordExporter = _otlp_exporter(target, "logs")
    return exporter


def build_metric_exporter(target: SignalExport, console: TextIO) -> MetricExporter:
    """The metric exporter ``target`` names."""
    if target.exporter == "console":
        return ConsoleMetricExporter(out=console)
    exporter: MetricExporter = _otlp_exporter(target, "metrics")
    return exporter


_STOCK = "opentelemetry.exporter.otlp.proto"
_OURS = "otel_flash.telemetry.otlp_exporters"  # the stock transports sending our encoding
# module and class of each OTLP exporter; imported on use only
_OTLP_CLASSES: dict[tuple[Signal, str], tuple[str, str]] = {
    ("traces", "grpc"): (_OURS, "GrpcSpanExporter"),
    ("logs", "grpc"): (_OURS, "GrpcLogRecordExporter"),
    ("metrics", "grpc"): (f"{_STOCK}.grpc.metric_exporter", "OTLPMetricExporter"),
    ("traces", "http/protobuf"): (_OURS, "HttpSpanExporter"),
    ("logs", "http/protobuf"): (_OURS, "HttpLogRecordExporter"),
    ("metrics", "http/protobuf"): (f"{_STOCK}.http.metric_exporter", "OTLPMetricExporter"),
}


def _otlp_exporter(target: SignalExport, signal: Signal) -> Any:
    """The OTLP exporter of ``signal`` over ``target``'s protocol, every setting passed explicitly."""
    module, name = _OTLP_CLASSES[(signal, target.protocol)]
    exporter_class = getattr(importlib.import_module(module), name)
    url = target.url(signal)
    common = {"headers": dict(target.headers), "timeout": target.timeout_s}
    if target.protocol == "grpc":
        return exporter_class(url, _insecure(url), compression=_grpc_compression(target), **common)
    return exporter_class(url, compression=_http_compression(target), **common)


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
