"""With nothing observing spans or records, executions take the lean path and lose nothing visible."""

from __future__ import annotations

import re

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.telemetry.observation import records_observed, spans_observed, unobserved_span
from otel_flash.telemetry.sdk import log_record_processors
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines
from tests.test_capture import MIXED


def test_observation_checks(telemetry: TelemetryCapture) -> None:
    """Bare providers are unobserved; the in-memory ones are observed; unknown ones count as observed."""
    bare = LoggerProvider(shutdown_on_exit=False)
    assert spans_observed(TracerProvider(shutdown_on_exit=False)) is False
    assert spans_observed(telemetry.tracer_provider) is True
    with RemoteExecutor(FlashConfig()) as executor:
        [capture] = log_record_processors(executor.telemetry.logger_provider) or ()  # its own, alone
        assert records_observed(bare, capture) is True  # not attached to this provider at all
        assert records_observed(executor.telemetry.logger_provider, capture) is False
    assert records_observed(telemetry.logger_provider, capture) is True
    assert records_observed(object(), capture) is True  # type: ignore[arg-type]  # cannot tell


def test_unobserved_span_continues_the_parent_trace() -> None:
    """A stand-in span keeps its parent's trace id and gets a fresh span id."""
    from opentelemetry import trace

    root = unobserved_span()
    child = unobserved_span(trace.set_span_in_context(root))
    assert child.get_span_context().trace_id == root.get_span_context().trace_id != 0
    assert child.get_span_context().span_id != root.get_span_context().span_id
    assert child.get_span_context().trace_flags.sampled


def test_lean_path_renders_the_same_lines() -> None:
    """Unexported executions capture logs and prints in the same order and format."""
    with RemoteExecutor(FlashConfig()) as executor:
        response = executor.execute_sync(function_request(MIXED, "f"))
    lines = stdout_lines(response.stdout)
    assert [re.sub(r"^\S+Z \| ", "", line) for line in lines] == [
        "INFO | one",
        "two",
        "WARN | three 3",
        "err line",
        "four five",
        "tail without newline",
    ]
    assert response.trace_id is not None and re.fullmatch(r"[0-9a-f]{32}", response.trace_id)
    assert response.trace_id != "0" * 32


def test_lean_path_continues_the_caller_trace() -> None:
    """trace_id still names the caller's trace when no span is recorded."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with RemoteExecutor(FlashConfig()) as executor:
        request = {
            **function_request("def f():\n    return 1\n", "f"),
            "trace_context": {"traceparent": parent},
        }
        assert executor.execute_sync(request).trace_id == "0af7651916cd43dd8448eb211c80319c"
