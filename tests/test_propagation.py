"""W3C trace context in and out: carriers parsed leniently, the current context injected."""

from __future__ import annotations

import logging

import pytest

from otel_flash import RemoteExecutor
from otel_flash.telemetry.propagation import extract_context, inject_context
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

HELLO = "def hello():\n    return 'hi'\n"


@pytest.mark.parametrize("traceparent", ["garbage", "00-zz-yy-01", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_malformed_traceparent_is_ignored_with_a_warning(
    traceparent: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad traceparent yields no parent span and one warning naming it, never an exception."""
    with caplog.at_level(logging.WARNING, "flash.propagation"):
        context = extract_context({"traceparent": traceparent})
    assert inject_context(context) == {}
    assert any("malformed" in record.getMessage() for record in caplog.records)


def test_execution_with_malformed_context_succeeds_in_a_new_trace(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """The request still runs; flash.execute is a root and its trace id is returned."""
    request = {**function_request(HELLO, "hello"), "trace_context": {"traceparent": "not-a-traceparent"}}
    response = executor.execute_sync(request)
    assert response.success and response.json_result == "hi"
    assert telemetry.span("flash.execute").parent is None
    assert response.trace_id is not None and len(response.trace_id) == 32 and set(response.trace_id) != {"0"}


def test_header_names_are_matched_case_insensitively() -> None:
    """``Traceparent`` from an HTTP-minded caller is understood as ``traceparent``."""
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert inject_context(extract_context({"Traceparent": parent}))["traceparent"] == parent
