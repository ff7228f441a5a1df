"""Metrics from the executor's own timings: executions, phase durations, installs and log lines."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN_CONTEXT

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash._phases import InstallFacts
from otel_flash.export_settings import ExportSettings, SignalExport
from otel_flash.telemetry.metrics import ExecutionFacts, ExecutionMetrics
from otel_flash.telemetry.observation import spans_observed
from otel_flash.telemetry.providers import build_providers
from otel_flash.testing import TelemetryCapture, capture_telemetry
from tests.requests import function_request

CHATTY = """
def chatty(n):
    for i in range(n):
        print("line", i)
    if n < 0:
        raise ValueError("negative")
    return n
"""

LONG = """
def long():
    print("x" * 5000)
"""


class Metrics:
    """A meter provider read in memory, and a tracer provider with nothing observing its spans."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider([self.reader], shutdown_on_exit=False)
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)

    def points(self, name: str) -> list[tuple[dict[str, Any], float]]:
        """``(attributes, value)`` of each data point of ``name``; a histogram's value is its count."""
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], float]] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found.append(
                                (dict(point.attributes or {}), float(getattr(point, "count", value) or 0))
                            )
        return found


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """Fresh in-memory metrics."""
    found = Metrics()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


@pytest.fixture
def metered(metrics: Metrics, telemetry: TelemetryCapture) -> Iterator[RemoteExecutor]:
    """An executor whose metrics go to ``metrics``."""
    with RemoteExecutor(
        FlashConfig(max_log_lines=4, max_line_bytes=200),
        tracer_provider=metrics.tracer_provider,
        logger_provider=telemetry.logger_provider,
        meter_provider=metrics.meter_provider,
    ) as executor:
        yield executor


def test_executions_are_counted_by_outcome(metered: RemoteExecutor, metrics: Metrics) -> None:
    """Two successes and one failure give two counter points with their outcome."""
    for n in (1, 2, -1):
        metered.execute_sync(function_request(CHATTY, "chatty", n))
    by_outcome = {attrs["flash.outcome"]: value for attrs, value in metrics.points("flash.executions")}
    assert by_outcome == {"success": 2, "error": 1}
    assert {attrs["flash.execution_type"] for attrs, _ in metrics.points("flash.executions")} == {"function"}


def test_duration_histogram_has_one_series_per_phase(metered: RemoteExecutor, metrics: Metrics) -> None:
    """Each phase and the whole execution get a duration histogram series."""
    metered.execute_sync(function_request(CHATTY, "chatty", 1))
    phases = {attrs["flash.phase"]: count for attrs, count in metrics.points("flash.phase.duration")}
    assert phases == {"execute": 1, "function.load": 1, "function.call": 1, "result.serialize": 1}


def test_failed_phase_is_measured_with_error_outcome(metered: RemoteExecutor, metrics: Metrics) -> None:
    """The call phase that raised is recorded with ``flash.outcome=error``."""
    metered.execute_sync(function_request(CHATTY, "chatty", -1))
    outcomes = {
        attrs["flash.phase"]: attrs["flash.outcome"] for attrs, _ in metrics.points("flash.phase.duration")
    }
    assert outcomes["function.call"] == "error"
    assert outcomes["function.load"] == "success"


def test_log_lines_kept_and_omitted_are_counted(metered: RemoteExecutor, metrics: Metrics) -> None:
    """Ten lines with room for four: four kept, six omitted."""
    metered.execute_sync(function_request(CHATTY, "chatty", 10))
    lines = {attrs["flash.log.disposition"]: value for attrs, value in metrics.points("flash.log.lines")}
    assert lines == {"kept": 4, "omitted": 6}
    assert [value for _, value in metrics.points("flash.log.omitted_bytes")] != [0]


def test_bytes_cut_from_a_long_line_are_counted_without_omitted_lines(
    metered: RemoteExecutor, metrics: Metrics
) -> None:
    """A line cut to ``max_line_bytes`` is kept as a line; the bytes cut off count as omitted bytes."""
    assert metered.execute_sync(function_request(LONG, "long")).success
    lines = {attrs["flash.log.disposition"]: value for attrs, value in metrics.points("flash.log.lines")}
    assert lines == {"kept": 1}
    [(_, omitted_bytes)] = metrics.points("flash.log.omitted_bytes")
    assert omitted_bytes > 0


def test_dependency_phases_count_installs_and_cache_hits(metrics: Metrics) -> None:
    """An install that ran counts as an install by outcome; a skipped one as a cache hit."""
    installs = [
        InstallFacts("python", "uv", skipped=False, failed=False),
        InstallFacts("python", "uv", skipped=False, failed=True),
        InstallFacts("system", "apt-get", skipped=True, failed=False),
    ]
    facts = ExecutionFacts(INVALID_SPAN_CONTEXT, True, "function", {}, None, 1.0, 0, 0, 0, installs)
    ExecutionMetrics.of(metrics.meter_provider).record(facts)
    counted = sorted(
        (a["flash.dependencies.kind"], a["flash.outcome"], v)
        for a, v in metrics.points("flash.dependencies.installs")
    )
    assert counted == [("python", "error", 1), ("python", "success", 1)]
    hits = [
        (a["flash.dependencies.kind"], a["flash.dependencies.installer"], v)
        for a, v in metrics.points("flash.dependencies.cache_hits")
    ]
    assert hits == [("system", "apt-get", 1)]


def test_satisfied_dependencies_count_as_a_cache_hit_on_the_lean_path(
    metered: RemoteExecutor, metrics: Metrics
) -> None:
    """With nothing observing spans, an already-installed requirement still counts as a cache hit."""
    request = function_request(CHATTY, "chatty", 1)
    request["dependencies"] = ["pytest"]
    assert metered.execute_sync(request).success
    hits = [(a["flash.dependencies.kind"], v) for a, v in metrics.points("flash.dependencies.cache_hits")]
    assert hits == [("python", 1)]


def test_metrics_only_export_keeps_the_lean_path() -> None:
    """Exporting metrics alone adds no span processor, so executions keep the lean path."""
    export = ExportSettings(metrics=SignalExport("console"))
    telemetry = build_providers(FlashConfig().replace(export=export), console=io.StringIO())
    try:
        assert telemetry.metrics is not None
        assert not spans_observed(telemetry.tracer_provider)
    finally:
        telemetry.shutdown()


def test_two_executors_on_one_meter_provider_both_count(
    metrics: Metrics, telemetry: TelemetryCapture
) -> None:
    """Executors sharing a meter provider share its instruments: every execution is counted once."""
    for _ in range(2):
        with RemoteExecutor(
            tracer_provider=metrics.tracer_provider,
            logger_provider=telemetry.logger_provider,
            meter_provider=metrics.meter_provider,
        ) as executor:
            executor.execute_sync(function_request(CHATTY, "chatty", 1))
    assert [value for _, value in metrics.points("flash.executions")] == [2]


def test_capture_telemetry_keeps_metrics_and_shuts_down_at_exit() -> None:
    """``with capture_telemetry()`` gives spans, records and the executions' metrics, then shuts down."""
    with capture_telemetry() as telemetry:
        with RemoteExecutor(
            FlashConfig(),
            tracer_provider=telemetry.tracer_provider,
            logger_provider=telemetry.logger_provider,
            meter_provider=telemetry.meter_provider,
        ) as executor:
            assert executor.execute_sync(function_request(CHATTY, "chatty", 2)).success
        assert telemetry.span_tree()[0].shape()[0] == "flash.execute"
        assert {"flash.executions", "flash.phase.duration"} <= set(telemetry.metric_names())
    telemetry.tracer_provider.get_tracer("after").start_span("after exit").end()
    assert "after exit" not in [span.name for span in telemetry.spans()]  # its exporter is shut down
