"""Per-record capture cost: full path vs plain logging vs OTel's stock in-memory path."""

from __future__ import annotations

import io
import logging
import statistics
import time
from collections.abc import Callable

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otel_flash import FlashConfig, RemoteExecutor

RECORDS = 20_000
REPEATS = 7
CODE = """
import logging, time
log = logging.getLogger("bench.user")

def burst(n):
    started = time.perf_counter_ns()
    for i in range(n):
        log.info("processed item %d of %s", i, "batch")
    return (time.perf_counter_ns() - started) / n
"""


def _isolated_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _timed_burst(logger: logging.Logger) -> float:
    started = time.perf_counter_ns()
    for i in range(RECORDS):
        logger.info("processed item %d of %s", i, "batch")
    return (time.perf_counter_ns() - started) / RECORDS


def plain_ns() -> float:
    """ns per record: logging into StreamHandler(StringIO) with the production format."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
    return _timed_burst(_isolated_logger("bench.plain", handler))


def stock_otel_ns() -> float:
    """ns per record: OTel LoggingHandler + SimpleLogRecordProcessor + InMemoryLogRecordExporter."""
    provider = LoggerProvider(shutdown_on_exit=False)
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK lacks annotation
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    try:
        return _timed_burst(_isolated_logger("bench.stock", LoggingHandler(logger_provider=provider)))
    finally:
        provider.shutdown()


def full_path_ns(executor: RemoteExecutor) -> float:
    """ns per record inside an execution: bridge, CaptureProcessor, render, bounded buffer."""
    request = {
        "function_name": "burst",
        "function_code": CODE,
        "args": [RECORDS],
        "serialization_format": "json",
    }
    response = executor.execute_sync(request)
    assert response.success, response.error
    return float(response.json_result)


def _median(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(REPEATS))


def main() -> None:
    """Print each path's median ns per record and the ratios to the goals."""
    config = FlashConfig(max_log_lines=RECORDS * 2, max_log_bytes=64 << 20)
    with RemoteExecutor(config) as executor:
        full_path_ns(executor)  # warm up
        samples: dict[str, list[float]] = {"plain": [], "stock": [], "full": []}
        for _ in range(REPEATS):  # interleaved, so drift hits all three alike
            samples["plain"].append(plain_ns())
            samples["stock"].append(stock_otel_ns())
            samples["full"].append(full_path_ns(executor))
    plain, stock, full = (statistics.median(samples[key]) for key in ("plain", "stock", "full"))
    print(f"plain logging (StreamHandler, StringIO):   {plain / 1000:6.2f} us/record")
    print(f"stock OTel (LoggingHandler+Simple+InMem):  {stock / 1000:6.2f} us/record")
    print(f"otel_flash full capture path:              {full / 1000:6.2f} us/record")
    print(f"ratio full/plain: {full / plain:.2f}x (goal <= 1.5x)")
    print(f"ratio full/stock: {full / stock:.2f}x (goal < 1.0x)")


if __name__ == "__main__":
    main()
