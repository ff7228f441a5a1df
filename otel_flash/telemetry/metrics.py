"""Execution metrics, from the executor's own phase timings (no span needed).

The executor hands :meth:`ExecutionMetrics.record` one tuple per execution: the
timings and facts it gathers anyway for the ``REPORT`` line, so metrics-only export
keeps the lean path (:mod:`otel_flash.telemetry.observation`). ``record`` only appends
the tuple to a list; every :data:`FOLD_AT` executions, and at each collection, the
list is folded into the totals in one pass under one lock. Done one by one, the same
updates cost 4-5 µs per execution (their code and data are out of the caches by the
time the next execution ends); folded 256 at a time, under 1 µs. No SDK instrument is
called on the execution's path (an SDK ``record`` costs 6-8 µs, five per execution
would add half a trivial request):

* counters are observable counters fed from cumulative totals kept here;
* on a meter provider otel_flash builds, the duration histogram is aggregated here
  too (:class:`~otel_flash.telemetry.durations.PhaseDurations`) and merged into each
  export by the provider's exporter;
* on a meter provider a caller passes in, durations go to an SDK histogram so its
  views and readers apply: the tuples are kept and recorded when a reader collects
  (or by a background drain once many are pending).

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

``flash.outcome`` is ``success`` or ``error``. The ``execute`` series of the histogram
has exemplars pointing at the execution's ``flash.execute`` span, as the provider's
exemplar filter allows (the phase series have none).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import NamedTuple, Protocol

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
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
from otel_flash.telemetry.durations import BOUNDS_S, DESCRIPTION, METER_NAME, PhaseDurations
from otel_flash.telemetry.sdk import exemplar_filter

FOLD_AT = 256
"""Executions kept before they are folded into the totals (by the execution that reaches it)."""
_DRAIN_AT = 1024  # pending executions that start a background drain (SDK instruments)
_YIELD_EVERY = 32  # executions measured between two offers of the GIL to other threads
_OUTCOMES = {True: "success", False: "error"}

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
    installs: Sequence[InstallFacts]


_SUCCESS_AND_TYPE, _LOG_LINES = itemgetter(1, 2), itemgetter(6)  # ExecutionFacts fields, for map()
_OMITTED_LINES, _OMITTED_BYTES, _INSTALLS = itemgetter(7), itemgetter(8), itemgetter(9)


class Durations(Protocol):
    """Where the durations of executions are measured."""

    def add_many(self, batch: Sequence[ExecutionFacts], since_ns: int) -> None:
        """Measure the durations of executions that ended since ``since_ns`` (or keep them for
        :meth:`drain`), under the metrics' lock."""

    def drain(self) -> None:
        """Measure what :meth:`add` kept; called before each collection."""


class ExecutionMetrics:
    """The metrics of executions on one meter provider; shared by every executor using it.

    Use :meth:`of` to get the one of a provider: an observable instrument's callback
    can be registered once per provider, so two executors on one provider share it.
    """

    def __init__(self, meter_provider: MeterProvider, durations: PhaseDurations | None = None) -> None:
        meter = meter_provider.get_meter(METER_NAME)
        self._durations: Durations = durations if durations is not None else _SdkDurations(meter)
        self._lock = durations.lock if durations is not None else threading.Lock()  # one lock per execution
        if durations is not None:
            durations.follow(exemplar_filter(meter_provider))
        self._pending: list[ExecutionFacts] = []  # executions not folded into the totals yet
        self._pending_since = time.time_ns()  # no later than the first pending execution's end
        self._executions: dict[tuple[bool, str], int] = {}  # by success and execution type
        self._lines = [0, 0, 0]  # kept, omitted, omitted bytes
        self._installs: Counter[Labels] = Counter()
        self._cache_hits: Counter[Labels] = Counter()
        for name, (unit, description) in _COUNTERS.items():
            meter.create_observable_counter(name, [self._observer(name)], unit=unit, description=description)

    @classmethod
    def of(cls, meter_provider: MeterProvider, durations: PhaseDurations | None = None) -> ExecutionMetrics:
        """The metrics of ``meter_provider``, created on first use.

        ``durations``: where a provider otel_flash builds aggregates the durations (its
        reader exports them); only the first call for a provider can give it.
        """
        with _registry_lock:
            found = _registry.get(meter_provider)
            if found is None:
                found = _registry[meter_provider] = cls(meter_provider, durations)
            return found

    def record(self, facts: ExecutionFacts) -> None:
        """Count one execution and measure its durations. Never raises, never waits.

        The execution is kept; the one that brings the kept ones to :data:`FOLD_AT`
        folds them, unless a fold or a collection holds the lock (then a later one does).
        """
        pending = self._pending
        if not pending:
            self._pending_since = time.time_ns()
        pending.append(facts)  # list.append is atomic: no lock on the execution's path
        if len(pending) >= FOLD_AT and self._lock.acquire(blocking=False):
            try:
                self._fold()
            finally:
                self._lock.release()

    def fold(self) -> None:
        """Fold the executions kept so far into the totals (before each collection)."""
        with self._lock:
            self._fold()

    def _fold(self) -> None:
        """Fold the kept executions; the caller holds the lock. Executions kept meanwhile stay."""
        pending = self._pending
        count = len(pending)
        if not count:
            return
        since, batch = self._pending_since, pending[:count]
        del pending[:count]  # what was appended after ``count`` is kept for the next fold
        try:
            self._count(batch)
            self._durations.add_many(batch, since)
        except Exception:
            internal_logger().exception("could not record the metrics of %d executions", count)

    def _count(self, batch: list[ExecutionFacts]) -> None:
        """Count executions by outcome and type, and their lines (and installs, when they ran any)."""
        executions = self._executions
        for key, count in Counter(map(_SUCCESS_AND_TYPE, batch)).items():
            executions[key] = executions.get(key, 0) + count
        if any(map(_OMITTED_LINES, batch)) or any(map(_OMITTED_BYTES, batch)) or any(map(_INSTALLS, batch)):
            for facts in batch:  # some cut lines or ran installs: one by one
                if facts.omitted_lines or facts.omitted_bytes or facts.installs:
                    self._count_rare(facts)
                else:
                    self._lines[0] += facts.log_lines
        else:
            self._lines[0] += sum(map(_LOG_LINES, batch))

    def _count_rare(self, facts: ExecutionFacts) -> None:
        """Count an execution that omitted lines or bytes (a cut line), or ran dependency phases."""
        lines = self._lines
        lines[0] += max(0, facts.log_lines - facts.omitted_lines)
        lines[1] += facts.omitted_lines
        lines[2] += facts.omitted_bytes
        for install in facts.installs:
            self._count_install(install)

    def _count_install(self, install: InstallFacts) -> None:
        labels: Labels = (
            (DEPENDENCIES_KIND, install.kind),
            (DEPENDENCIES_INSTALLER, install.installer),
        )
        if install.skipped:
            self._cache_hits[labels] += 1
        else:
            self._installs[(*labels, (OUTCOME, _OUTCOMES[not install.failed]))] += 1

    def _totals(self, name: str) -> list[tuple[Labels, int]]:
        """The cumulative totals of counter ``name`` by labels (call under the lock)."""
        if name == EXECUTIONS_METRIC:
            return [
                (((OUTCOME, _OUTCOMES[success]), (EXECUTION_TYPE, kind)), value)
                for (success, kind), value in self._executions.items()
            ]
        kept, omitted, omitted_bytes = self._lines
        if name == LOG_LINES_METRIC:
            found: list[tuple[Labels, int]] = [(((LOG_DISPOSITION, "kept"),), kept)]
            found += [(((LOG_DISPOSITION, "omitted"),), omitted)] if omitted else []
            return found if self._executions else []
        if name == LOG_OMITTED_BYTES_METRIC:
            return [((), omitted_bytes)] if omitted_bytes else []
        counts = self._installs if name == DEPENDENCIES_INSTALLS_METRIC else self._cache_hits
        return list(counts.items())

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            self.fold()
            self._durations.drain()
            with self._lock:
                totals = self._totals(name)
            return [Observation(value, dict(labels)) for labels, value in totals]

        return observe


class _SdkDurations:
    """Durations recorded on the SDK histogram of a meter provider otel_flash did not build.

    Its views and readers apply. An SDK ``record`` costs 6-8 µs per point, so the
    execution only keeps its facts; they are recorded before each collection (the
    observable counters' callbacks run first), or by a background drain once many are
    pending. Only the ``execute`` point carries the ``flash.execute`` span's context,
    for exemplars (each costs ~4 µs).
    """

    def __init__(self, meter: Meter) -> None:
        self._histogram = meter.create_histogram(
            PHASE_DURATION_METRIC,
            unit="s",
            description=DESCRIPTION,
            explicit_bucket_boundaries_advisory=BOUNDS_S,
        )
        self._pending: list[ExecutionFacts] = []
        self._lock = threading.Lock()
        self._draining = False

    def add_many(self, batch: Sequence[ExecutionFacts], since_ns: int) -> None:
        """Keep executions' facts for the next drain."""
        self._pending.extend(batch)
        if len(self._pending) >= _DRAIN_AT and not self._draining:
            self._draining = True
            threading.Thread(target=self.drain, name="flash-metrics-drain", daemon=True).start()

    def drain(self) -> None:
        """Record the pending executions' points."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._draining = False
            for index, facts in enumerate(pending, 1):
                self._record(facts)
                if not index % _YIELD_EVERY:
                    time.sleep(0)  # let executions run: a drain must not hold the GIL for long

    def _record(self, facts: ExecutionFacts) -> None:
        record = self._histogram.record
        outcome = _OUTCOMES[facts.success]
        context = trace.set_span_in_context(trace.NonRecordingSpan(facts.span_context))
        record(facts.total_ms / 1e3, {PHASE: "execute", OUTCOME: outcome}, context)
        for phase, elapsed_ms in facts.phases_ms.items():
            failed = facts.failed_phase == f"flash.{phase}"
            record(elapsed_ms / 1e3, {PHASE: phase, OUTCOME: _OUTCOMES[not failed]})


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
