"""The ``flash.phase.duration`` histogram, aggregated here and merged into each export.

An SDK ``Histogram.record`` costs 6-8 µs per point (attribute copying and hashing, a
``Measurement``, locks, an exemplar offer) and an execution makes about five points,
most of a trivial request's budget. On a meter provider otel_flash builds, whose one
reader exports through :class:`DurationMergingExporter`, the points are aggregated
here instead: per series (``flash.phase``, ``flash.outcome``) a bucket-count list, a
sum, a minimum and a maximum, updated a batch of executions at a time (see
:class:`~otel_flash.telemetry.metrics.ExecutionMetrics`), and handed to the exporter
as finished ``HistogramDataPoint``\\ s at each collection, in the temporality it
prefers. What is exported is what the SDK's explicit-bucket aggregation would export:
the same buckets, sums, minimums and maximums, and on the ``execute`` series one
exemplar per bucket (the last execution the provider's exemplar filter keeps: by
default the last sampled ``flash.execute`` span). A series starts no later than its
first point (the SDK starts it at that point).

A meter provider a caller passes in gets SDK instruments instead
(:mod:`otel_flash.telemetry.metrics`), so its views and readers apply.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial
from itertools import chain, groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Exemplar,
    ExemplarFilter,
)
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.view import DefaultAggregation, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from otel_flash._internal import internal_logger
from otel_flash.semconv import OUTCOME, PHASE, PHASE_DURATION_METRIC
from otel_flash.telemetry.sdk import metric_preferences
from otel_flash.telemetry.wrapping import WrappingMetricExporter

if TYPE_CHECKING:
    from otel_flash.telemetry.metrics import ExecutionFacts

__all__ = [
    "BOUNDS_S",
    "DESCRIPTION",
    "METER_NAME",
    "DurationMergingExporter",
    "PhaseDurations",
    "merging_phase_durations",
]

METER_NAME = "otel_flash"
"""The instrumentation scope of every metric of executions."""
DESCRIPTION = "Duration of each phase of an execution, and of the whole execution."
"""The description of ``flash.phase.duration``."""
_BOUNDS_MS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 3e4, 6e4, 3e5)
_FIRST_BOUND_MS = _BOUNDS_MS[0]
BOUNDS_S: tuple[float, ...] = tuple(bound / 1e3 for bound in _BOUNDS_MS)
"""Explicit bucket boundaries of ``flash.phase.duration``, in seconds."""
_FLASH_PREFIX = len("flash.")  # a failed phase is named by its span: flash.<phase>
_TRACE_FLAGS: Final = 3  # SpanContext is Tuple[int, int, bool, TraceFlags, ...]: no property call
_bucket = partial(bisect_left, _BOUNDS_MS)  # a value's bucket: (bound before, its bound]
# ExecutionFacts fields, for map() over a batch
_SUCCESS, _PHASES_MS, _FAILED_PHASE, _TOTAL_MS = itemgetter(1), itemgetter(3), itemgetter(4), itemgetter(5)
_NAME, _MS = itemgetter(0), itemgetter(1)  # of a (phase, ms) pair


class _Series:
    """One series' aggregation since the last collection (delta) or since the start (cumulative)."""

    __slots__ = ("counts", "exemplars", "maximum", "minimum", "start_ns", "total")

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns  # a cumulative series starts at its first point, as in the SDK
        self.counts = [0] * (len(_BOUNDS_MS) + 1)
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = float("-inf")
        self.exemplars: dict[int, ExecutionFacts] = {}  # by bucket: the last sampled execution


class PhaseDurations:
    """The duration histogram of executions, aggregated in place; read by one exporter.

    :meth:`add_many` folds a batch of executions into their series (the caller holds
    :attr:`lock`, which :class:`~otel_flash.telemetry.metrics.ExecutionMetrics` shares);
    nothing is kept but the numbers and one exemplar per bucket. :meth:`collect` hands
    out the series as data points. With delta temporality a collection starts the next
    period, so one exporter (one reader) reads it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._success: dict[str, _Series] = {}
        self._error: dict[str, _Series] = {}
        self._previous_ns = time.time_ns()
        self._exemplar_flags = (0, TraceFlags.SAMPLED)  # (always, mask): the trace-based filter

    def follow(self, exemplars: ExemplarFilter | None) -> None:
        """Keep exemplars as the meter provider's filter says: trace-based (the default), always on or off."""
        if isinstance(exemplars, AlwaysOnExemplarFilter):
            self._exemplar_flags = (TraceFlags.SAMPLED, TraceFlags.SAMPLED)
        elif isinstance(exemplars, AlwaysOffExemplarFilter):
            self._exemplar_flags = (0, 0)

    def add_many(self, batch: Sequence[ExecutionFacts], since_ns: int) -> None:
        """Fold executions into their series, in the order given; the caller holds :attr:`lock`.

        Milliseconds in, seconds out. A series created here starts at ``since_ns`` (no
        later than its first point). Executions where nothing failed (nearly all) are
        folded together, series by series, in C-level passes (``map``, ``sum``, ``min``,
        ``max``); the others one by one.
        """
        plain: Sequence[ExecutionFacts] = batch
        if not all(map(_SUCCESS, batch)) or any(map(_FAILED_PHASE, batch)):
            plain = []
            for facts in batch:
                if facts.success and facts.failed_phase is None:
                    plain.append(facts)
                else:
                    self._add_failed(facts, since_ns)
        if not plain:
            return
        execute = _series(self._success, "execute", since_ns)
        totals = list(map(_TOTAL_MS, plain))
        _fold(execute, totals)
        self._keep_exemplars(execute, plain, totals)
        for phase, values in _by_phase(list(map(_PHASES_MS, plain))):
            _fold(_series(self._success, phase, since_ns), values)

    def _keep_exemplars(self, series: _Series, batch: Sequence[ExecutionFacts], totals: list[float]) -> None:
        """Keep, by bucket, the last execution of ``batch`` the exemplar filter keeps."""
        always, mask = self._exemplar_flags
        if not mask:
            return
        if max(totals) <= _FIRST_BOUND_MS:  # one bucket (a fast function): look from the end
            for facts in reversed(batch):
                if (facts.span_context[_TRACE_FLAGS] | always) & mask:
                    series.exemplars[0] = facts
                    return
            return
        kept = batch if always else [facts for facts in batch if facts.span_context[_TRACE_FLAGS] & mask]
        series.exemplars.update(zip(map(_bucket, map(_TOTAL_MS, kept)), kept, strict=True))

    def _add_failed(self, facts: ExecutionFacts, since_ns: int) -> None:
        """Fold one execution that failed: its ``execute`` and failed phase in the error series."""
        by_outcome = (self._error, self._success)
        execute = _series(by_outcome[facts.success], "execute", since_ns)
        _fold(execute, [facts.total_ms])
        self._keep_exemplars(execute, [facts], [facts.total_ms])
        failed = facts.failed_phase[_FLASH_PREFIX:] if facts.failed_phase else None
        for phase, ms in facts.phases_ms.items():
            _fold(_series(by_outcome[phase != failed], phase, since_ns), [ms])

    def drain(self) -> None:
        """Nothing to do: executions are folded as :meth:`add_many` is handed them."""

    def collect(self, delta: bool) -> list[HistogramDataPoint]:
        """The data points now: since the last collection (``delta``) or since the start."""
        now = time.time_ns()
        with self.lock:
            taken = [("success", self._success), ("error", self._error)]
            start = None
            if delta:
                start, self._previous_ns = self._previous_ns, now
                self._success, self._error = {}, {}
            return [
                _point(phase, outcome, series, series.start_ns if start is None else start, now)
                for outcome, by_phase in taken
                for phase, series in by_phase.items()
            ]


def _series(by_phase: dict[str, _Series], phase: str, since_ns: int) -> _Series:
    """The series of ``phase`` in ``by_phase`` (one outcome's), started at ``since_ns`` if new."""
    series = by_phase.get(phase)
    if series is None:
        series = by_phase[phase] = _Series(since_ns)
    return series


def _by_phase(phases: list[dict[str, float]]) -> Iterable[tuple[str, Sequence[float]]]:
    """Each phase's durations across executions, in their order.

    Executions nearly always share one set of phases: then the durations are read in
    one C-level pass (``itemgetter``, ``zip``); else the pairs are sorted by phase.
    """
    names = tuple(phases[0])
    if len(names) > 1 and set(map(len, phases)) == {len(names)}:
        try:
            return zip(names, zip(*map(itemgetter(*names), phases), strict=True), strict=True)
        except KeyError:  # the same number of phases, not the same ones
            pass
    pairs = sorted(chain.from_iterable(map(dict.items, phases)), key=_NAME)  # stable: in order
    return [(phase, list(map(_MS, group))) for phase, group in groupby(pairs, _NAME)]


def _fold(series: _Series, values: Sequence[float]) -> None:
    """Add ``values`` (ms, at least one) to ``series``: in order, so the sum is the one-by-one sum."""
    series.total = sum(values, series.total)
    low, high = min(values), max(values)
    if low < series.minimum:
        series.minimum = low
    if high > series.maximum:
        series.maximum = high
    counts = series.counts
    if high <= _FIRST_BOUND_MS:  # a fast function's phases: all in the first bucket
        counts[0] += len(values)
    else:
        for index, count in Counter(map(_bucket, values)).items():
            counts[index] += count


def _point(phase: str, outcome: str, series: _Series, start_ns: int, now_ns: int) -> HistogramDataPoint:
    """The data point of one series; its exemplars are handed out once (as the SDK's reservoir does).

    An exemplar is timed at the collection, as the SDK's were when executions were recorded then.
    """
    exemplars = [
        Exemplar({}, facts.total_ms / 1e3, now_ns, facts.span_context.span_id, facts.span_context.trace_id)
        for _, facts in sorted(series.exemplars.items())
    ]
    series.exemplars = {}
    return HistogramDataPoint(
        attributes={PHASE: phase, OUTCOME: outcome},
        start_time_unix_nano=start_ns,
        time_unix_nano=now_ns,
        count=sum(series.counts),
        sum=series.total / 1e3,
        bucket_counts=tuple(series.counts),
        explicit_bounds=BOUNDS_S,
        min=series.minimum / 1e3,
        max=series.maximum / 1e3,
        exemplars=exemplars,
    )


class DurationMergingExporter(WrappingMetricExporter):
    """Adds the phase-duration histogram of ``durations`` to every collection ``exporter`` receives."""

    def __init__(self, exporter: MetricExporter, durations: PhaseDurations) -> None:
        super().__init__(exporter)
        temporality, _ = metric_preferences(exporter)
        self._delta = (temporality or {}).get(HistogramInstrument) is AggregationTemporality.DELTA
        self._durations = durations

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Export one collection with the durations merged in."""
        try:
            merged = self._merged(metrics_data)
        except Exception:
            internal_logger().exception("could not add the phase durations to a metrics export")
            merged = metrics_data
        return self.exporter.export(merged, timeout_millis, **kwargs)

    def _merged(self, metrics_data: MetricsData) -> MetricsData:
        if not metrics_data.resource_metrics:  # no resource to put them under: they wait
            return metrics_data
        points = self._durations.collect(self._delta)
        if not points:
            return metrics_data
        temporality = AggregationTemporality.DELTA if self._delta else AggregationTemporality.CUMULATIVE
        metric = Metric(PHASE_DURATION_METRIC, DESCRIPTION, "s", Histogram(points, temporality))
        first, *rest = metrics_data.resource_metrics
        scopes = list(first.scope_metrics)
        ours = next((i for i, scope in enumerate(scopes) if scope.scope.name == METER_NAME), None)
        if ours is None:
            scopes.append(ScopeMetrics(InstrumentationScope(METER_NAME), [metric], ""))
        else:
            scope = scopes[ours]
            scopes[ours] = ScopeMetrics(scope.scope, [*scope.metrics, metric], scope.schema_url)
        return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])


def merging_phase_durations(exporter: MetricExporter) -> tuple[MetricExporter, PhaseDurations | None]:
    """``exporter`` wrapped to carry :class:`PhaseDurations`, and those; unwrapped when it cannot.

    It cannot when the exporter asks for another histogram aggregation than explicit
    buckets (``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION``): then the
    SDK instrument records the durations, in the aggregation asked for.
    """
    _, aggregation = metric_preferences(exporter)
    chosen = (aggregation or {}).get(HistogramInstrument)
    if chosen is not None and type(chosen) not in (DefaultAggregation, ExplicitBucketHistogramAggregation):
        return exporter, None
    durations = PhaseDurations()
    return DurationMergingExporter(exporter, durations), durations
