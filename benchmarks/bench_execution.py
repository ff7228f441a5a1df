"""Per-execution overhead: a trivial request through execute_sync vs calling the function directly."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.telemetry.durations import merging_phase_durations
from otel_flash.telemetry.metrics import ExecutionMetrics
from otel_flash.testing import capture_telemetry

CALLS = 2_000
REPEATS = 7
CODE = """
import logging
log = logging.getLogger("bench.trivial")

def trivial():
    log.info("one log line")
    print("one print")
    return 42
"""
TRIVIAL = {"function_name": "trivial", "function_code": CODE, "serialization_format": "json"}


def _per_call_us(call: Callable[[], Any], calls: int = CALLS) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - started) / calls / 1000


def reference_style(request: dict[str, Any]) -> dict[str, Any]:
    """What the reference worker does per request, without tracing: exec the code, route
    logging into a buffer handler on the root logger, redirect stdout, pickle the result."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(buffer):
            namespace: dict[str, Any] = {}
            exec(request["function_code"], namespace)
            result = namespace[request["function_name"]](*request["args"], **request["kwargs"])
        return {
            "success": True,
            "result": base64.b64encode(cloudpickle.dumps(result)).decode(),
            "stdout": buffer.getvalue(),
        }
    finally:
        root.removeHandler(handler)


def _direct_function() -> Callable[[], Any]:
    namespace: dict[str, Any] = {}
    exec(CODE, namespace)
    logging.getLogger("bench.trivial").disabled = False
    function: Callable[[], Any] = namespace["trivial"]
    return function


def _timed_executor(request: dict[str, Any], meter_provider: MeterProvider | None) -> float:
    """µs per execution of a fresh executor (alone on the root logger while timed), warmed up."""
    with RemoteExecutor(FlashConfig(), meter_provider=meter_provider) as executor:
        executor.execute_sync(request)  # warm up: compile cache, loggers
        return _per_call_us(lambda: executor.execute_sync(request))


class _Discard(MetricExporter):
    """Takes each collection and drops it: the collection is measured, not an exporter's encoding."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Drop one collection."""
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing held."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""


def _own_meter_provider() -> MeterProvider:
    """A meter provider as otel_flash builds one to export metrics (durations aggregated by otel_flash)."""
    exporter, durations = merging_phase_durations(_Discard())
    provider = MeterProvider([PeriodicExportingMetricReader(exporter, math.inf)], shutdown_on_exit=False)
    ExecutionMetrics.of(provider, durations)
    return provider


def _metered_us(
    request: dict[str, Any], meter_provider: MeterProvider, collect: Callable[[], Any]
) -> tuple[float, float]:
    """µs per execution on ``meter_provider``: the executions' loop, and with the collection after it."""
    with RemoteExecutor(FlashConfig(), meter_provider=meter_provider) as executor:
        executor.execute_sync(request)  # warm up: compile cache, loggers
        collect()  # what earlier executions left
        loop = _per_call_us(lambda: executor.execute_sync(request))
        started = time.perf_counter_ns()
        collect()
        return loop, loop + (time.perf_counter_ns() - started) / CALLS / 1000


def main() -> None:
    """Print median µs per trivial execution, ratios to a direct call and to the reference's way."""
    request = TRIVIAL
    reference_request = {**request, "args": [], "kwargs": {}}
    own = _own_meter_provider()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider([reader], shutdown_on_exit=False)
    direct = _direct_function()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # as the reference worker's logging set-up: its INFO line is kept
    samples: dict[str, list[float]] = {
        "flash": [],
        "direct": [],
        "reference": [],
        "metered": [],
        "metered path": [],
        "caller's provider": [],
    }
    sink = io.StringIO()
    for _ in range(REPEATS):  # interleaved, so drift hits all alike
        samples["flash"].append(_timed_executor(request, None))
        with contextlib.redirect_stdout(sink):
            samples["direct"].append(_per_call_us(direct))
        samples["reference"].append(_per_call_us(lambda: reference_style(reference_request)))
        loop, collected = _metered_us(request, own, own.force_flush)
        samples["metered path"].append(loop)
        samples["metered"].append(collected)
        samples["caller's provider"].append(_metered_us(request, meter_provider, reader.get_metrics_data)[1])
        sink.seek(0)
        sink.truncate()
    root.setLevel(level)
    flash, plain, reference, with_metrics, metrics_path, sdk_metrics = (
        statistics.median(samples[key])
        for key in ("flash", "direct", "reference", "metered", "metered path", "caller's provider")
    )
    print(f"direct call (log + print + return):      {plain:8.1f} us")
    print(f"reference-style pipeline, no tracing:    {reference:8.1f} us")
    print(f"otel_flash execute_sync:                 {flash:8.1f} us")
    print(f"  with metrics, the executions' loop:    {metrics_path:8.1f} us")
    print(f"  with metrics, collection included:     {with_metrics:8.1f} us")
    print(f"  metrics on a caller's meter provider:  {sdk_metrics:8.1f} us (SDK instruments, collected)")
    print(f"ratio otel_flash/reference-style:        {flash / reference:8.2f}x (goal <= 1.0x)")
    print(f"ratio otel_flash/direct:                 {flash / plain:8.2f}x")
    print(
        f"ratio with metrics/without:              {metrics_path / flash:8.2f}x in the loop, "
        f"{with_metrics / flash:.2f}x with the collection (goal <= 1.05x); "
        f"{sdk_metrics / flash:.2f}x on a caller's provider"
    )
    phases = _phase_breakdown(request)
    print("span medians with spans and records recorded (in-memory exporters, the full path):")
    for name, micros in phases.items():
        print(f"  {name:<24} {micros:8.1f} us")


def _phase_breakdown(request: dict[str, Any]) -> dict[str, float]:
    """Median µs of each span, from an executor whose spans are recorded (the full path)."""
    telemetry = capture_telemetry()
    samples: dict[str, list[float]] = {}
    with RemoteExecutor(
        FlashConfig(), tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        for _ in range(300):
            telemetry.clear()
            executor.execute_sync(request)
            for span in telemetry.spans():
                if span.start_time is not None and span.end_time is not None:
                    samples.setdefault(span.name, []).append((span.end_time - span.start_time) / 1000)
    telemetry.shutdown()
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    main()
