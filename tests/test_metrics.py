"""Metrics derived from finished flash spans: executions, phase durations, installs and log lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.metrics import SpanMetricsProcessor
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

CHATTY = """
def chatty(n):
    for i in range(n):
        print("line", i)
    if n < 0:
        raise ValueError("negative")
    return n
"""


class Metrics:
    """A tracer provider whose spans feed a SpanMetricsProcessor read in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider([self.reader], shutdown_on_exit=False)
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SpanMetricsProcessor(self.meter_provider))

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
    """Fresh in-memory metrics fed by spans."""
    found = Metrics()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


@pytest.fixture
def metered(metrics: Metrics, telemetry: TelemetryCapture) -> Iterator[RemoteExecutor]:
    """An executor whose spans go to ``metrics``."""
    with RemoteExecutor(
        FlashConfig(max_log_lines=4),
        tracer_provider=metrics.tracer_provider,
        logger_provider=telemetry.logger_provider,
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


def test_dependency_spans_count_installs_and_cache_hits(metrics: Metrics) -> None:
    """An install that ran counts as an install by outcome; a skipped one as a cache hit."""
    tracer = metrics.tracer_provider.get_tracer("test")
    installer = {"flash.dependencies.installer": "uv"}
    with tracer.start_as_current_span("flash.dependencies.python", attributes=installer):
        pass
    with tracer.start_as_current_span("flash.dependencies.python", attributes=installer) as span:
        span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span(
        "flash.dependencies.system", attributes={"flash.dependencies.installer": "apt-get"}
    ) as span:
        span.set_attribute("flash.dependencies.skipped", True)
    installs = sorted(
        (a["flash.dependencies.kind"], a["flash.outcome"], v)
        for a, v in metrics.points("flash.dependencies.installs")
    )
    assert installs == [("python", "error", 1), ("python", "success", 1)]
    hits = [
        (a["flash.dependencies.kind"], a["flash.dependencies.installer"], v)
        for a, v in metrics.points("flash.dependencies.cache_hits")
    ]
    assert hits == [("system", "apt-get", 1)]


def test_spans_not_ours_are_ignored(metrics: Metrics) -> None:
    """A user's span records nothing."""
    with metrics.tracer_provider.get_tracer("user").start_as_current_span("my.work"):
        pass
    assert metrics.points("flash.phase.duration") == []
