"""Process isolation overhead: the same trivial request with isolation="thread" and "process".

Each process-mode execution forks a fresh child from the zygote, loads and calls the
function there and streams its log back; the figure that matters is the per-execution
cost against in-process, sequentially and with 8 callers at once.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.testing import capture_telemetry

REPEATS = 5
SEQUENTIAL = {"thread": 400, "process": 100}
CONCURRENT = 200
CODE = """
import logging
log = logging.getLogger("bench.trivial")

def trivial(x):
    log.info("one log line")
    print("one print")
    return x
"""
REQUEST: dict[str, Any] = {
    "function_name": "trivial",
    "function_code": CODE,
    "args": [1],
    "serialization_format": "json",
}


def _sequential_ms(executor: RemoteExecutor, calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        response = executor.execute_sync(REQUEST)
        if not response.success:
            raise RuntimeError(response.error)
    return (time.perf_counter_ns() - started) / calls / 1e6


def _concurrent_ms(executor: RemoteExecutor) -> float:
    started = time.perf_counter_ns()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: executor.execute_sync(REQUEST), range(CONCURRENT)))
    if not all(response.success for response in responses):
        raise RuntimeError("a request failed")
    return (time.perf_counter_ns() - started) / CONCURRENT / 1e6


def _measure(mode: str) -> tuple[float, float]:
    telemetry = capture_telemetry()
    config = FlashConfig(isolation="process" if mode == "process" else "thread")
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        _sequential_ms(executor, 5)  # warm up (the zygote starts on the first request)
        sequential, concurrent = [], []
        for _ in range(REPEATS):
            telemetry.clear()
            sequential.append(_sequential_ms(executor, SEQUENTIAL[mode]))
            telemetry.clear()
            concurrent.append(_concurrent_ms(executor))
    telemetry.shutdown()
    return statistics.median(sequential), statistics.median(concurrent)


def main() -> None:
    """Print per-execution times of both modes and their ratio."""
    thread_seq, thread_conc = _measure("thread")
    process_seq, process_conc = _measure("process")
    print(f"one execution, sequential: thread {thread_seq:.3f} ms, process {process_seq:.3f} ms")
    print(f"  process / thread = {process_seq / thread_seq:.1f}x (+{process_seq - thread_seq:.2f} ms each)")
    print(f"8 callers at once, per execution: thread {thread_conc:.3f} ms, process {process_conc:.3f} ms")
    print(f"  process / thread = {process_conc / thread_conc:.1f}x")


if __name__ == "__main__":
    main()
