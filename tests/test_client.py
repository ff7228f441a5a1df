"""The client helper: a function becomes a request that runs remotely and continues the caller's trace."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from otel_flash import LoadError, RemoteExecutor, SerializationError
from otel_flash.client import function_request, result_of, source_of
from otel_flash.testing import TelemetryCapture


def _traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@_traced
def scale(values: list[int], factor: int = 2) -> dict[str, list[int]]:
    """A decorated module-level function, as a user would send it."""
    import logging

    logging.getLogger("user").info("scaling %d values", len(values))
    return {"scaled": [value * factor for value in values]}


def test_function_runs_remotely_with_pickled_arguments(executor: RemoteExecutor) -> None:
    """Source and cloudpickle arguments round-trip through the executor to the decoded result."""
    request = function_request(scale, args=([1, 2, 3],), kwargs={"factor": 10})
    response = executor.execute_sync(request.model_dump(exclude_none=True))
    assert result_of(response) == {"scaled": [10, 20, 30]}
    assert response.stdout is not None and "scaling 3 values" in response.stdout


def test_source_drops_decorators_and_keeps_the_definition() -> None:
    """The decorator line is not sent (the worker does not have it); the def line comes first."""
    assert source_of(scale).startswith("def scale(values: list[int], factor: int = 2)")


def test_current_span_and_baggage_are_injected(telemetry: TelemetryCapture) -> None:
    """Inside a caller's span the request carries its traceparent and baggage."""
    tracer = telemetry.tracer_provider.get_tracer("caller")
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("caller") as span:
            request = function_request(scale, args=([1],))
    finally:
        otel_context.detach(token)
    ids = span.get_span_context()
    carrier = request.trace_context or {}
    assert carrier["traceparent"].startswith(f"00-{trace.format_trace_id(ids.trace_id)}-{ids.span_id:016x}-")
    assert carrier["baggage"] == "tenant=acme"


def test_caller_span_becomes_parent_of_flash_execute(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """The executor continues the injected context: flash.execute's parent is the caller's span."""
    with telemetry.tracer_provider.get_tracer("caller").start_as_current_span("caller") as span:
        request = function_request(scale, args=([1],))
    response = executor.execute_sync(request)
    root = telemetry.span("flash.execute")
    assert root.parent is not None and root.parent.span_id == span.get_span_context().span_id
    assert response.trace_id == trace.format_trace_id(span.get_span_context().trace_id)


def test_without_a_current_span_no_context_is_sent() -> None:
    """Outside any span, ``trace_context`` stays unset (the worker starts a new trace)."""
    assert function_request(scale, args=([1],)).trace_context is None


def test_lambda_cannot_be_sent() -> None:
    """A lambda has no name to call remotely: a LoadError says to use def."""
    with pytest.raises(LoadError, match="lambda"):
        function_request(lambda: 1)


def test_unpicklable_argument_names_the_argument() -> None:
    """An argument cloudpickle cannot encode is reported with its position."""
    import threading

    with pytest.raises(SerializationError, match=r"args\[0\]"):
        function_request(scale, args=(threading.Lock(),))


def test_failed_response_raises_with_the_worker_error(executor: RemoteExecutor) -> None:
    """``result_of`` turns a failed response into an error carrying the remote message."""
    response = executor.execute_sync(function_request(scale, args=(None,)))
    with pytest.raises(RuntimeError, match="TypeError"):
        result_of(response)
