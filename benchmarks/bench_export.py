"""Execution latency with OTLP export to a live receiver, a dead endpoint, a black hole, and export off.

Each setting gets its own executor running the same small function (20 log lines)
many times; the figures are medians and 99th percentiles of single executions, and
the time ``shutdown()`` took (bounded by ``shutdown_timeout_s=1``). The receivers
run in this process on the same cores, so the live rows include their CPU cost.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.export import SIGNALS, BatchSettings, ExportSettings, OtlpProtocol, Signal
from tests.otlp_receivers import BlackHole, GrpcReceiver, HttpReceiver, refused_endpoint

RUNS = 300
WARMUP = 20
CODE = """
import logging
log = logging.getLogger("bench.user")

def work(n):
    for i in range(n):
        log.info("step %d", i)
    return n
"""
REQUEST = {"function_name": "work", "function_code": CODE, "args": [20], "serialization_format": "json"}


@dataclass(frozen=True)
class Figures:
    """What one setting measured."""

    median_ms: float
    p99_ms: float
    shutdown_s: float
    dropped: int


def _export(
    endpoint: str, protocol: OtlpProtocol = "grpc", signals: tuple[Signal, ...] = SIGNALS
) -> ExportSettings:
    return ExportSettings.otlp(
        endpoint,
        protocol,
        signals=signals,
        timeout_s=2.0,
        span_batch=BatchSettings(schedule_delay_ms=200),
        log_batch=BatchSettings(schedule_delay_ms=200),
        shutdown_timeout_s=1.0,
    )


def _dead(signal: Signal, _receiver: object) -> ExportSettings:
    return _export(refused_endpoint(), signals=(signal,))


class _Discard(SpanProcessor, LogRecordProcessor):
    """Observes spans and records and drops them: telemetry recorded, nothing exported."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Drop the record."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is held."""
        return True


def _recorded_executor() -> RemoteExecutor:
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(_Discard())
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(_Discard())
    return RemoteExecutor(FlashConfig(), tracer_provider=tracer_provider, logger_provider=logger_provider)


def _measure(export: ExportSettings | None) -> Figures:
    if export is None:
        executor = _recorded_executor()
    else:
        executor = RemoteExecutor(FlashConfig(log_level="INFO").replace(export=export))
    for _ in range(WARMUP):
        executor.execute_sync(REQUEST)
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter_ns()
        response = executor.execute_sync(REQUEST)
        samples.append((time.perf_counter_ns() - started) / 1e6)
        assert response.success, response.error
    started = time.perf_counter_ns()
    executor.shutdown()
    shutdown_s = (time.perf_counter_ns() - started) / 1e9
    ledgers = executor._telemetry.ledgers
    dropped = sum(ledger.dropped + ledger.accepted - ledger.handed for ledger in ledgers)
    samples.sort()
    return Figures(statistics.median(samples), samples[int(len(samples) * 0.99) - 1], shutdown_s, dropped)


Setting = tuple[str, Callable[[], AbstractContextManager[Any]], Callable[[Any], ExportSettings | None]]


def _settings() -> list[Setting]:
    return [
        ("export off", nullcontext, lambda _: ExportSettings()),
        ("recorded, not exported", nullcontext, lambda _: None),
        ("live gRPC receiver", GrpcReceiver, lambda r: _export(r.endpoint)),
        ("live HTTP receiver", HttpReceiver, lambda r: _export(r.endpoint, "http/protobuf")),
        ("dead endpoint (refused)", nullcontext, lambda _: _export(refused_endpoint())),
        *(
            (f"dead endpoint, {signal} only", nullcontext, functools.partial(_dead, signal))
            for signal in SIGNALS
        ),
        ("black-holed collector", BlackHole, lambda r: _export(r.endpoint)),
    ]


def main() -> None:
    """Print each setting's latency as a ratio of export off, and its shutdown time."""
    results: dict[str, Figures] = {}
    for name, receiver, export in _settings():
        with receiver() as running:
            results[name] = _measure(export(running))
    base = results["export off"]
    recorded = results["recorded, not exported"]
    print(f"{RUNS} executions each (20 log lines per execution); ratios to export off")
    print(f"{'setting':<30} {'median':>9} {'ratio':>6} {'p99':>9} {'ratio':>6} {'shutdown':>9} {'lost':>6}")
    for name, figures in results.items():
        print(
            f"{name:<30} {figures.median_ms:>7.2f}ms {figures.median_ms / base.median_ms:>5.2f}x "
            f"{figures.p99_ms:>7.2f}ms {figures.p99_ms / base.p99_ms:>5.2f}x "
            f"{figures.shutdown_s:>8.2f}s {figures.dropped:>6}"
        )
    live = results["live gRPC receiver"].median_ms
    print(
        f"live gRPC / recorded-not-exported (the cost of exporting itself): {live / recorded.median_ms:.2f}x"
    )
