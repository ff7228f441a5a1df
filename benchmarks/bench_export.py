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
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks._receiver import ReceiverProcess
from benchmarks._stock import StockExecutor, encode_floor
from benchmarks.bench_execution import TRIVIAL
from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.export_settings import SIGNALS, BatchSettings, ExportSettings, OtlpProtocol, Signal
from otel_flash.telemetry.delivery import BoundedLogRecordProcessor, BoundedSpanProcessor, DeliveryLedger
from otel_flash.telemetry.otlp_encoding import LogEncoder, SpanEncoder
from otel_flash.telemetry.sdk import new_logger_provider, new_tracer_provider
from tests.otlp_receivers import BlackHole, GrpcReceiver, HttpReceiver, refused_endpoint

RUNS = 300
WARMUP = 20
AMORTISED_RUNS = 3000
ROUNDS = 3
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
    ledgers = executor.telemetry.ledgers
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
    compare_with_stock()


@dataclass(frozen=True)
class Amortised:
    """One row of the comparison with the stock executor, per request."""

    wall_us: float
    cpu_us: float
    p50_us: float
    p99_us: float
    spans: int
    records: int


def _amortised(
    run: Callable[[], object], flush: Callable[[], object], receiver: ReceiverProcess
) -> Amortised:
    """``AMORTISED_RUNS`` requests then a flush: wall and CPU time (all threads) per request, latencies."""
    spans_before, records_before, _ = receiver.counts()
    latencies = []
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(AMORTISED_RUNS):
        started = time.perf_counter_ns()
        run()
        latencies.append(time.perf_counter_ns() - started)
    flush()
    wall, cpu = time.perf_counter_ns() - wall, time.process_time_ns() - cpu
    time.sleep(0.2)  # the receiver decodes the last batches
    spans, records, _ = receiver.counts()
    latencies.sort()
    return Amortised(
        wall / AMORTISED_RUNS / 1e3,
        cpu / AMORTISED_RUNS / 1e3,
        latencies[len(latencies) // 2] / 1e3,
        latencies[int(len(latencies) * 0.99)] / 1e3,
        spans - spans_before,
        records - records_before,
    )


def _stock_row(receiver: ReceiverProcess) -> Amortised:
    stock = StockExecutor(receiver.endpoint)
    stock.execute(TRIVIAL)
    try:
        flush = lambda: (stock.tracer_provider.force_flush(), stock.logger_provider.force_flush())  # noqa: E731
        return _amortised(lambda: stock.execute(TRIVIAL), flush, receiver)
    finally:
        stock.shutdown()


def _flash_row(receiver: ReceiverProcess, signals: tuple[Signal, ...]) -> Amortised:
    export = ExportSettings.otlp(receiver.endpoint, signals=signals)
    executor = RemoteExecutor(FlashConfig(log_level="INFO").replace(export=export))
    executor.execute_sync(TRIVIAL)
    try:
        return _amortised(lambda: executor.execute_sync(TRIVIAL), executor.force_flush, receiver)
    finally:
        executor.shutdown()


def _floor_us() -> tuple[float, float]:
    """The floor's wall and CPU time per execution."""
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    encode_floor(AMORTISED_RUNS)
    wall, cpu = time.perf_counter_ns() - wall, time.process_time_ns() - cpu
    return wall / AMORTISED_RUNS / 1e3, cpu / AMORTISED_RUNS / 1e3


def compare_with_stock() -> None:
    """Our export cost against the stock-SDK executor and the encode floor, interleaved rounds."""
    rows: dict[str, list[Amortised]] = {
        "stock SDK executor": [],
        "flash, spans + logs": [],
        "flash, 3 signals": [],
    }
    floors: list[float] = []
    floor_cpus: list[float] = []
    with ReceiverProcess() as receiver:
        for _ in range(ROUNDS):
            wall, cpu = _floor_us()
            floors.append(wall)
            floor_cpus.append(cpu)
            rows["stock SDK executor"].append(_stock_row(receiver))
            rows["flash, spans + logs"].append(_flash_row(receiver, ("traces", "logs")))
            rows["flash, 3 signals"].append(_flash_row(receiver, SIGNALS))
    floor = statistics.median(floors)
    floor_cpu = statistics.median(floor_cpus)
    stock = statistics.median(row.wall_us for row in rows["stock SDK executor"])
    stock_cpu = statistics.median(row.cpu_us for row in rows["stock SDK executor"])
    print(
        f"\ntrivial request, export on to a receiver in another process; {AMORTISED_RUNS} requests + flush "
        f"per round, {ROUNDS} rounds interleaved; per request, medians over rounds [min-max]"
    )
    print(
        f"floor (create 4 spans + encode them to OTLP protobuf): {floor:.1f} us wall, {floor_cpu:.1f} us cpu"
    )
    print("wall: requests + final flush, all threads; cpu: this process's CPU time (all threads) per request")
    header = (
        f"{'row':<22} {'amortised wall':>22} {'/stock':>7} {'/floor':>7} {'cpu':>8} {'p50':>8} {'p99':>8}"
    )
    print(header + f" {'delivered':>18}")
    for name, found in rows.items():
        walls = sorted(row.wall_us for row in found)
        wall = statistics.median(walls)
        expected_spans, expected_records = (
            4 * AMORTISED_RUNS,
            (1 if name.startswith("stock") else 2) * AMORTISED_RUNS,
        )
        delivered = (
            min(row.spans for row in found) / expected_spans,
            min(row.records for row in found) / expected_records,
        )
        print(
            f"{name:<22} {wall:>7.1f} us [{walls[0]:.0f}-{walls[-1]:.0f}] "
            f"{wall / stock:>6.2f}x {wall / floor:>6.2f}x "
            f"{statistics.median(row.cpu_us for row in found):>5.0f} us "
            f"{statistics.median(row.cpu_us for row in found) / stock_cpu:>6.2f}x "
            f"{statistics.median(row.p50_us for row in found):>5.0f} us "
            f"{statistics.median(row.p99_us for row in found):>5.0f} us "
            f"spans {delivered[0]:.1%} logs {delivered[1]:.1%}"
        )
    _print_required(rows, stock, floor, floor_cpu)
    compare_encoders()


def _print_required(rows: dict[str, list[Amortised]], stock: float, floor: float, floor_cpu: float) -> None:
    """The ratios issue 14 asks for, each against its bound."""
    ours = statistics.median(row.wall_us for row in rows["flash, spans + logs"])
    ours_cpu = statistics.median(row.cpu_us for row in rows["flash, spans + logs"])
    three = statistics.median(row.wall_us for row in rows["flash, 3 signals"])
    checks = [
        ("spans + logs / stock (wall)", ours / stock, 1.0),
        ("spans + logs / floor (wall)", ours / floor, 1.3),
        ("spans + logs / floor (cpu)", ours_cpu / floor_cpu, 1.3),
        ("3 signals / stock (wall)", three / stock, 1.1),
        ("3 signals / floor (wall)", three / floor, 1.3),
    ]
    print("required (issue 14, section 1):")
    for name, ratio, bound in checks:
        print(f"  {name:<30} {ratio:5.2f}x  (<= {bound:.2f}x: {'met' if ratio <= bound else 'NOT met'})")


ENCODED_EXECUTIONS = 128


def _recorded_batch() -> tuple[Sequence[ReadableSpan], Sequence[ReadableLogRecord]]:
    """The spans and log records of ``ENCODED_EXECUTIONS`` trivial requests, as our queues hold them."""
    spans, records = InMemorySpanExporter(), InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    batch = BatchSettings(max_queue_size=4096, max_export_batch_size=4096)
    tracer_provider = new_tracer_provider(Resource.create({"service.name": "encode"}))
    tracer_provider.add_span_processor(BoundedSpanProcessor(spans, batch, DeliveryLedger("spans", "memory")))
    logger_provider = new_logger_provider(Resource.create({"service.name": "encode"}))
    logger_provider.add_log_record_processor(
        BoundedLogRecordProcessor(records, batch, DeliveryLedger("log records", "memory"))
    )
    with RemoteExecutor(
        FlashConfig(log_level="INFO"), tracer_provider=tracer_provider, logger_provider=logger_provider
    ) as executor:
        for _ in range(ENCODED_EXECUTIONS):
            executor.execute_sync(TRIVIAL)
    tracer_provider.force_flush()
    logger_provider.force_flush()
    return spans.get_finished_spans(), records.get_finished_logs()


def _cpu_us(encode: Callable[[], object]) -> float:
    """The least process time of one call, over rounds."""
    times = []
    for _ in range(9):
        started = time.process_time_ns()
        encode()
        times.append(time.process_time_ns() - started)
    return min(times) / 1e3


def compare_encoders() -> None:
    """The export thread's encoding alone: the stock OTLP encoders against ours, on the same batch."""
    spans, records = _recorded_batch()
    span_encoder, log_encoder = SpanEncoder(), LogEncoder()
    rows = [
        ("spans (stock encode_spans)", _cpu_us(lambda: encode_spans(spans).SerializeToString())),
        ("spans (ours)", _cpu_us(lambda: span_encoder.encode(spans))),
        ("log records (stock encode_logs)", _cpu_us(lambda: encode_logs(records).SerializeToString())),
        ("log records (ours)", _cpu_us(lambda: log_encoder.encode(records))),
    ]
    print(
        f"\nencoding alone, one batch of {ENCODED_EXECUTIONS} trivial requests' {len(spans)} spans and "
        f"{len(records)} log records; process time per request (least of 9)"
    )
    for name, total in rows:
        print(f"  {name:<34} {total / ENCODED_EXECUTIONS:6.1f} us")
    stock = (rows[0][1] + rows[2][1]) / ENCODED_EXECUTIONS
    ours = (rows[1][1] + rows[3][1]) / ENCODED_EXECUTIONS
    print(f"  {'spans + log records':<34} stock {stock:.1f} us, ours {ours:.1f} us: {ours / stock:.2f}x")
