"""Time limits: sync code is abandoned and reported, coroutines are cancelled, stdout is kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

SLOW_SYNC = """
import time
def slow(seconds):
    print("started")
    time.sleep(seconds)
    print("never printed")
    return "finished"
"""
SLOW_ASYNC = """
import asyncio
async def slow(seconds):
    print("started")
    await asyncio.sleep(seconds)
    return "finished"
"""


@pytest.fixture
def limited(telemetry: TelemetryCapture) -> Iterator[RemoteExecutor]:
    """An executor whose default limit is 0.3 s, capped at 1 s."""
    config = FlashConfig(timeout_s=0.3, max_timeout_s=1.0)
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        yield executor


def test_sync_function_past_limit_is_reported(limited: RemoteExecutor) -> None:
    """execute_sync returns at the limit, says the thread may still run, keeps earlier lines."""
    response = limited.execute_sync(function_request(SLOW_SYNC, "slow", 30))
    assert response.success is False
    assert response.error is not None
    assert response.error.startswith("timed out after 0.3 s; its thread may still be running")
    assert stdout_lines(response.stdout)[0] == "started"
    assert "never printed" not in (response.stdout or "")


@pytest.mark.asyncio
async def test_coroutine_past_limit_is_cancelled(limited: RemoteExecutor) -> None:
    """execute() cancels a coroutine at its limit."""
    response = await limited.execute(function_request(SLOW_ASYNC, "slow", 30))
    assert response.error == "timed out after 0.3 s; the coroutine was cancelled"
    assert stdout_lines(response.stdout)[0] == "started"


@pytest.mark.asyncio
async def test_sync_function_in_async_entry_point(limited: RemoteExecutor) -> None:
    """execute() abandons a sync function at its limit without blocking the loop."""
    response = await limited.execute(function_request(SLOW_SYNC, "slow", 30))
    assert response.error is not None and response.error.startswith("timed out after 0.3 s")


def test_request_limit_is_capped_by_config(limited: RemoteExecutor) -> None:
    """A request asking for more than max_timeout_s gets the cap."""
    request = {**function_request(SLOW_SYNC, "slow", 30), "timeout_s": 500}
    response = limited.execute_sync(request)
    assert response.error is not None and response.error.startswith("timed out after 1 s")


def test_request_limit_applies_without_a_default(executor: RemoteExecutor) -> None:
    """timeout_s on a request limits it even when the executor has no default."""
    response = executor.execute_sync({**function_request(SLOW_SYNC, "slow", 30), "timeout_s": 0.2})
    assert response.error is not None and response.error.startswith("timed out after 0.2 s")


def test_within_limit_succeeds_and_executor_stays_usable(limited: RemoteExecutor) -> None:
    """A function that finishes in time answers normally, also after a timeout."""
    limited.execute_sync(function_request(SLOW_SYNC, "slow", 30))
    response = limited.execute_sync(function_request(SLOW_SYNC, "slow", 0))
    assert (response.success, response.json_result) == (True, "finished")
    assert stdout_lines(response.stdout) == ["started", "never printed"]


def test_hanging_unpickle_is_bounded(limited: RemoteExecutor) -> None:
    """Arguments whose unpickling hangs are bounded by the same limit (decoding is in the load phase)."""
    from tests.requests import pickled

    class Hang:
        def __reduce__(self) -> tuple[object, tuple[float]]:
            import time

            return (time.sleep, (30,))

    request = {
        **function_request("def f(x):\n    return 1\n", "f"),
        "serialization_format": "cloudpickle",
        "args": [pickled(Hang())],
    }
    response = limited.execute_sync(request)
    assert response.error is not None and response.error.startswith("timed out after 0.3 s")


def test_invalid_timeout_is_refused(executor: RemoteExecutor) -> None:
    """A non-positive timeout_s is a validation error naming the field."""
    response = executor.execute_sync({**function_request(SLOW_SYNC, "slow", 0), "timeout_s": 0})
    assert response.error == "invalid request: timeout_s: Input should be greater than 0"
