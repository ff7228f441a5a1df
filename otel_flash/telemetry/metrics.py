"""Execution metrics, from the executor's own phase timings (no span needed).

The executor hands :meth:`ExecutionMetrics.record` one tuple per execution: the
timings and facts it gathers anyway for the ``REPORT`` line. Nothing else happens on
the execution's path (an SDK instrument call costs ~6 µs, six per execution would
add half a trivial request). The tuples are turned into measurements when the
metric reader collects (or by a background drain once many are pending), so
metrics-only export keeps the lean path (:mod:`otel_flash.telemetry.observation`):

========================================  ==================  ================================
instrument                                kind                attributes
========================================  ==================  ================================
``flash.executions``                      counter             ``flash.outcome``,
                                                              ``flash.execution_type``
``flash.phase.duration`` (s)              histogram           ``flash.phase`` (``execute`` for
                                                              the whole execution),
                                                              ``flash.outcome``
``flash.dependencies.installs``           counter             ``flash.dependencies.kind``,
                                                              ``flash.dependencies.installer``,
                                                              ``flash.outcome``
``flash.dependencies.cache_hits``         counter             ``flash.dependencies.kind``,
                                                              ``flash.dependencies.installer``
``flash.log.lines``                       counter             ``flash.log.disposition``
                                                              (``kept`` or ``omitted``)
``flash.log.omitted_bytes`` (By)          counter
========================================  ==================  ================================

``flash.outcome`` is ``success`` or ``error``. Counters are observable counters fed
from cumulative totals kept here; the ``execute`` series of the histogram has exemplars
pointing at the execution's ``flash.execute`` span (the phase series have none: each
exemplar costs about 4 µs).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import SpanContext

from otel_flash._internal import internal_logger
from otel_flash._phases import InstallFacts
from otel_flash.semconv import (
    DEPENDENCIES_CACHE_HITS_METRIC,
    DEPENDENCIES_INSTALLER,
    DEPENDENCIES_INSTALLS_METRIC,
    DEPENDENCIES_KIND,
    EXECUTION_TYPE,
    EXECUTIONS_METRIC,
    LOG_DISPOSITION,
    LOG_LINES_METRIC,
    LOG_OMITTED_BYTES_METRIC,
    OUTCOME,
    PHASE,
    PHASE_DURATION_METRIC,
)

_DURATION_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
_DRAIN_AT = 1024  # pending executions that start a background drain between collections
_YIELD_EVERY = 32  # executions measured between two offers of the GIL to other threads

Labels = tuple[tuple[str, str], ...]


class ExecutionFacts(NamedTuple):
    """What one execution hands to :meth:`ExecutionMetrics.record` (built without copying)."""

    span_context: SpanContext
    success: bool
    execution_type: str
    phases_ms: dict[str, float]
    failed_phase: str | None
    total_ms: float
    log_lines: int
    omitted_lines: int
    omitted_bytes: int
    installs: list[InstallFacts]


class ExecutionMetrics:
    """The metrics of executions on one meter provider; shared by every executor using it.

    Use :meth:`of` to get the one of a provider: an observable instrument's callback
    can be registered once per provider, so two executors on one provider share it.
    """

    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("otel_flash")
        self._pending: list[ExecutionFacts] = []
        self._lock = threading.Lock()
        self._draining = False
        self._totals: dict[str, Counter[Labels]] = {name: Counter() for name in _COUNTERS}
        self._duration = meter.create_histogram(
            PHASE_DURATION_METRIC,
            unit="s",
            description="Duration of each phase of an execution, and of the whole execution.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS_S,
        )
        for name, (unit, description) in _COUNTERS.items():
            meter.create_observable_counter(name, [self._observer(name)], unit=unit, description=description)

    @classmethod
    def of(cls, meter_provider: MeterProvider) -> ExecutionMetrics:
        """The metrics of ``meter_provider``, created on first use."""
        with _registry_lock:
            found = _registry.get(meter_provider)
            if found is None:
                found = _registry[meter_provider] = cls(meter_provider)
            return found

    def record(self, facts: ExecutionFacts) -> None:
        """Keep one execution's facts; measured at the next collection. Never raises."""
        self._pending.append(facts)  # list.append is atomic: no lock on the execution's path
        if len(self._pending) >= _DRAIN_AT and not self._draining:
            self._draining = True
            threading.Thread(target=self.drain, name="flash-metrics-drain", daemon=True).start()

    def drain(self) -> None:
        """Turn pending facts into measurements (histogram points, counter totals)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._draining = False
            try:
                for index, facts in enumerate(pending, 1):
                    self._measure(facts)
                    if not index % _YIELD_EVERY:
                        time.sleep(0)  # let executions run: a drain must not hold the GIL for long
            except Exception:
                internal_logger().exception("could not record the metrics of executions")

    def _measure(self, facts: ExecutionFacts) -> None:
        outcome = "success" if facts.success else "error"
        context = trace.set_span_in_context(trace.NonRecordingSpan(facts.span_context))
        self._totals[EXECUTIONS_METRIC][((OUTCOME, outcome), (EXECUTION_TYPE, facts.execution_type))] += 1
        record = self._duration.record
        record(facts.total_ms / 1e3, {PHASE: "execute", OUTCOME: outcome}, context)
        for phase, elapsed_ms in facts.phases_ms.items():
            failed = facts.failed_phase == f"flash.{phase}"
            labels = {PHASE: phase, OUTCOME: "error" if failed else "success"}
            record(elapsed_ms / 1e3, labels)  # an exemplar costs ~4 µs: the execute point has one
        for install in facts.installs:
            self._count_install(install)
        kept = max(0, facts.log_lines - facts.omitted_lines)
        self._totals[LOG_LINES_METRIC][((LOG_DISPOSITION, "kept"),)] += kept
        if facts.omitted_lines:
            self._totals[LOG_LINES_METRIC][((LOG_DISPOSITION, "omitted"),)] += facts.omitted_lines
        if facts.omitted_bytes:
            self._totals[LOG_OMITTED_BYTES_METRIC][()] += facts.omitted_bytes

    def _count_install(self, install: InstallFacts) -> None:
        labels: Labels = (
            (DEPENDENCIES_KIND, install.kind),
            (DEPENDENCIES_INSTALLER, install.installer),
        )
        if install.skipped:
            self._totals[DEPENDENCIES_CACHE_HITS_METRIC][labels] += 1
        else:
            outcome = "error" if install.failed else "success"
            self._totals[DEPENDENCIES_INSTALLS_METRIC][(*labels, (OUTCOME, outcome))] += 1

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            self.drain()
            with self._lock:
                totals = list(self._totals[name].items())
            return [Observation(value, dict(labels)) for labels, value in totals]

        return observe


_COUNTERS: dict[str, tuple[str, str]] = {
    EXECUTIONS_METRIC: ("{execution}", "Executions, by outcome."),
    DEPENDENCIES_INSTALLS_METRIC: ("{install}", "Installer processes run."),
    DEPENDENCIES_CACHE_HITS_METRIC: (
        "{install}",
        "Dependency phases skipped because everything was already installed.",
    ),
    LOG_LINES_METRIC: ("{line}", "Captured lines, kept or omitted."),
    LOG_OMITTED_BYTES_METRIC: ("By", "Bytes of captured output omitted."),
}
# one ExecutionMetrics per provider (see ExecutionMetrics.of); entries go with their provider
_registry: weakref.WeakKeyDictionary[MeterProvider, ExecutionMetrics] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()
