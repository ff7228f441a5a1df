"""The phase-duration histogram aggregated by otel_flash: the SDK's data, merged into each export."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.trace import SpanContext, TraceFlags

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.export_settings import ExportSettings
from otel_flash.telemetry.durations import BOUNDS_S, DESCRIPTION, merging_phase_durations
from otel_flash.telemetry.metrics import FOLD_AT, ExecutionFacts, ExecutionMetrics
from tests.otlp_receivers import GrpcReceiver
from tests.requests import function_request

WORK = """
def work(n):
    print("working on", n)
    if n < 0:
        raise ValueError("negative")
    return n
"""
Key = tuple[str, tuple[tuple[str, Any], ...]]
EXECUTE_OK: Key = ("flash.phase.duration", (("flash.outcome", "success"), ("flash.phase", "execute")))


class Collected(MetricExporter):
    """A metric exporter keeping every collection it is handed, in the temporality it is given."""

    def __init__(self, temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE) -> None:
        super().__init__({HistogramInstrument: temporality})
        self.exports: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Keep one collection."""
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing held."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""


class Own:
    """A meter provider built as otel_flash builds one to export metrics, exporting into memory."""

    def __init__(
        self,
        temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE,
        exemplars: ExemplarFilter | None = None,
    ) -> None:
        self.exporter = Collected(temporality)
        merging, durations = merging_phase_durations(self.exporter)
        assert durations is not None
        self.durations = durations
        reader = PeriodicExportingMetricReader(merging, math.inf)
        self.provider = MeterProvider([reader], exemplar_filter=exemplars, shutdown_on_exit=False)
        self.metrics = ExecutionMetrics.of(self.provider, durations)

    def record(self, executions: list[ExecutionFacts]) -> None:
        """Record each execution, as the executor does when it ends."""
        for facts in executions:
            self.metrics.record(facts)

    def collect(self) -> dict[Key, Any]:
        """Collect now; every data point of the export by metric name and attributes."""
        self.provider.force_flush()
        return _points(self.exporter.exports[-1])


@pytest.fixture
def own() -> Iterator[Own]:
    """A fresh meter provider whose durations otel_flash aggregates (cumulative)."""
    found = Own()
    yield found
    found.provider.shutdown()


def _points(data: MetricsData | None) -> dict[Key, Any]:
    assert data is not None
    return {
        (metric.name, tuple(sorted((point.attributes or {}).items()))): (metric, point)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


def _executions(count: int, seed: int = 7) -> list[ExecutionFacts]:
    """Varied executions: durations across the buckets, some failed, some not sampled."""
    rng = random.Random(seed)
    found = []
    for index in range(count):
        sampled = TraceFlags(TraceFlags.SAMPLED if index % 4 else TraceFlags.DEFAULT)
        context = SpanContext(rng.getrandbits(128), rng.getrandbits(64), False, sampled)
        phases = {"function.load": rng.random() * 3, "function.call": rng.expovariate(1 / 400)}
        failed = "flash.function.call" if index % 9 == 0 else None
        total = sum(phases.values()) + rng.random()
        found.append(ExecutionFacts(context, failed is None, "function", phases, failed, total, 1, 0, 0, []))
    return found


def _summary(point: HistogramDataPoint) -> tuple[Any, ...]:
    exemplars = [(e.trace_id, e.span_id, e.value) for e in point.exemplars]
    return (
        point.count,
        point.bucket_counts,
        point.explicit_bounds,
        round(point.sum, 9),
        point.min,
        point.max,
        exemplars,
    )


def test_aggregated_durations_equal_the_sdk_histogram(own: Own) -> None:
    """The same executions give the SDK histogram's series, buckets, sum, min, max and exemplars."""
    reader = InMemoryMetricReader()
    sdk = MeterProvider([reader], shutdown_on_exit=False)
    for facts in _executions(500):
        ExecutionMetrics.of(sdk).record(facts)
        own.metrics.record(facts)
    expected = _points(reader.get_metrics_data())
    found = own.collect()
    sdk.shutdown()
    assert found.keys() == expected.keys()
    histograms = [key for key in found if key[0] == "flash.phase.duration"]
    assert (
        len(histograms) == 5
    )  # execute, function.load, function.call: success; execute, function.call: error
    for key in histograms:
        (metric, point), (sdk_metric, sdk_point) = found[key], expected[key]
        assert (
            (metric.unit, metric.description)
            == (sdk_metric.unit, sdk_metric.description)
            == ("s", DESCRIPTION)
        )
        assert _summary(point) == _summary(sdk_point)
        assert point.explicit_bounds == BOUNDS_S
        assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE


def test_only_the_execute_series_has_exemplars_of_sampled_spans(own: Own) -> None:
    """Exemplars point at sampled ``flash.execute`` spans; the phase series carry none."""
    executions = _executions(40)
    own.record(executions)
    sampled = {facts.span_context.span_id for facts in executions if facts.span_context.trace_flags.sampled}
    collected = own.collect()
    by_phase = {
        dict(key[1])["flash.phase"]: point
        for key, (_, point) in collected.items()
        if key[0] == "flash.phase.duration" and ("flash.outcome", "success") in key[1]
    }
    assert {exemplar.span_id for exemplar in by_phase["execute"].exemplars} <= sampled
    assert by_phase["execute"].exemplars
    assert not by_phase["function.load"].exemplars


@pytest.mark.parametrize(
    ("exemplars", "kept"),
    [
        (None, False),
        (TraceBasedExemplarFilter(), False),
        (AlwaysOffExemplarFilter(), False),
        (AlwaysOnExemplarFilter(), True),
    ],
)
def test_the_providers_exemplar_filter_decides_whether_unsampled_executions_are_exemplars(
    exemplars: ExemplarFilter | None, kept: bool
) -> None:
    """Unsampled executions give exemplars only under ``always_on``; the default is trace-based."""
    own = Own(exemplars=exemplars)
    for facts in _executions(40):
        unsampled = facts.span_context.trace_flags & ~TraceFlags.SAMPLED
        context = SpanContext(
            facts.span_context.trace_id, facts.span_context.span_id, False, TraceFlags(unsampled)
        )
        own.metrics.record(facts._replace(span_context=context))
    points = [point for key, (_, point) in own.collect().items() if ("flash.phase", "execute") in key[1]]
    own.provider.shutdown()
    assert any(point.exemplars for point in points) is kept


def test_executions_recorded_from_many_threads_are_all_counted(own: Own) -> None:
    """Eight threads recording at once: every execution is in the histogram and the counter."""
    executions = _executions(400)
    threads = [threading.Thread(target=own.record, args=(executions[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    collected = own.collect()
    histogram = sum(
        point.count for key, (_, point) in collected.items() if ("flash.phase", "execute") in key[1]
    )
    counted = sum(point.value for key, (_, point) in collected.items() if key[0] == "flash.executions")
    assert histogram == counted == 400


def test_recording_never_waits_for_a_collection_holding_the_lock(own: Own) -> None:
    """Executions ending while a collection holds the lock are kept, not waited on, and counted next."""
    executions = _executions(FOLD_AT + 40)
    with own.durations.lock:  # what a collection holds while it reads the series
        recorder = threading.Thread(target=own.record, args=(executions,))
        recorder.start()
        recorder.join(timeout=30)
        assert not recorder.is_alive()
    collected = own.collect()
    counted = sum(point.value for key, (_, point) in collected.items() if key[0] == "flash.executions")
    assert counted == len(executions)


def test_a_cumulative_series_starts_no_later_than_its_first_execution(own: Own) -> None:
    """The start time of a series is not the collection's: it precedes the first execution it counts."""
    before = time.time_ns()
    own.record(_executions(2)[1:])  # one execution that succeeded (the first of these fails)
    recorded = time.time_ns()
    time.sleep(0.05)
    _, point = own.collect()[EXECUTE_OK]
    assert before <= point.start_time_unix_nano <= recorded < point.time_unix_nano


def test_cumulative_exports_keep_counting_from_the_start(own: Own) -> None:
    """A second cumulative export counts every execution since the start, from the same start time."""
    own.record(_executions(10))
    first = own.collect()
    own.record(_executions(10, seed=8))
    second = own.collect()
    (_, before), (_, after) = first[EXECUTE_OK], second[EXECUTE_OK]
    assert (before.count, after.count) == (8, 16)
    assert after.start_time_unix_nano == before.start_time_unix_nano


def test_delta_exports_hold_only_what_came_since_the_previous_one() -> None:
    """With delta temporality each export counts the executions since the previous export, from its time."""
    own = Own(AggregationTemporality.DELTA)
    own.record(_executions(10))
    first = own.collect()
    own.record(_executions(3, seed=8))
    second = own.collect()
    third = own.collect()
    own.provider.shutdown()
    (metric, before), (_, after) = first[EXECUTE_OK], second[EXECUTE_OK]
    assert metric.data.aggregation_temporality == AggregationTemporality.DELTA
    assert (before.count, after.count) == (8, 2)
    assert after.start_time_unix_nano == before.time_unix_nano
    assert EXECUTE_OK not in third  # nothing new: no point, as the SDK does


def test_an_exporter_asking_for_exponential_histograms_gets_the_sdk_instrument() -> None:
    """When the exporter prefers another histogram aggregation, durations are left to the SDK."""
    exporter = Collected()
    exporter._preferred_aggregation = {HistogramInstrument: ExponentialBucketHistogramAggregation()}
    merging, durations = merging_phase_durations(exporter)
    assert (merging, durations) == (exporter, None)


def test_durations_reach_an_otlp_receiver_with_buckets_and_exemplars() -> None:
    """Through a real gRPC receiver: one execute point per outcome, its buckets, bounds and exemplar."""
    with GrpcReceiver() as receiver:
        config = FlashConfig(service_name="flash-durations").replace(export=_metrics_only(receiver.endpoint))
        with RemoteExecutor(config) as executor:
            ok = executor.execute_sync(function_request(WORK, "work", 2))
            executor.execute_sync(function_request(WORK, "work", -1))
        assert receiver.received.wait_for(lambda r: bool(r.requests["metrics"]))
    histograms = [metric for metric in _received(receiver) if metric.name == "flash.phase.duration"]
    assert [(metric.unit, metric.description) for metric in histograms] == [("s", DESCRIPTION)]
    points = {_phase_outcome(point): point for point in histograms[0].histogram.data_points}
    assert {("execute", "success"), ("execute", "error"), ("function.call", "error")} <= points.keys()
    execute = points["execute", "success"]
    assert (execute.count, sum(execute.bucket_counts), tuple(execute.explicit_bounds)) == (1, 1, BOUNDS_S)
    assert [exemplar.trace_id.hex() for exemplar in execute.exemplars] == [ok.trace_id]
    assert histograms[0].histogram.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


def test_otlp_delta_preference_gives_delta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta``: the durations arrive as delta too."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    with GrpcReceiver() as receiver:
        config = FlashConfig().replace(export=_metrics_only(receiver.endpoint))
        with RemoteExecutor(config) as executor:
            executor.execute_sync(function_request(WORK, "work", 2))
            assert executor.force_flush()
            executor.execute_sync(function_request(WORK, "work", 3))
        assert receiver.received.wait_for(lambda r: len(r.requests["metrics"]) >= 2)
    histograms = [metric for metric in _received(receiver) if metric.name == "flash.phase.duration"]
    temporalities = {metric.histogram.aggregation_temporality for metric in histograms}
    assert temporalities == {metrics_pb2.AGGREGATION_TEMPORALITY_DELTA}
    counts = [
        point.count
        for metric in histograms
        for point in metric.histogram.data_points
        if _phase_outcome(point) == ("execute", "success")
    ]
    assert counts == [1, 1]


def _metrics_only(endpoint: str) -> ExportSettings:
    return ExportSettings.otlp(endpoint, signals=("metrics",), metric_interval_ms=3_600_000)


def _received(receiver: GrpcReceiver) -> list[Any]:
    return [
        metric
        for request in receiver.received.requests["metrics"]
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    ]


def _phase_outcome(point: Any) -> tuple[str, str]:
    attributes = {pair.key: pair.value.string_value for pair in point.attributes}
    return attributes["flash.phase"], attributes["flash.outcome"]
