"""Where user code runs: coroutines off the caller's loop, time limits that hold, bounded threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_flash import FlashConfig, RemoteExecutor, WorkerSaturated
from otel_flash.integrations.runpod import RunPodWorker
from otel_flash.runtime.workers import Capacity, observe_abandoned_threads
from otel_flash.server import create_app
from otel_flash.testing import TelemetryCapture
from tests.requests import HELLO, function_request
from tests.test_server import _wait_for, serving

# Set at teardown: every abandoned user thread of this module waits for it, so none outlives its test.
RELEASE = threading.Event()
BLOCKING_COROUTINE = """
import time
import tests.test_calls as t
async def f():
    while not t.RELEASE.is_set():
        time.sleep(0.01)
"""
SPINNING_COROUTINE = """
import tests.test_calls as t
async def f():
    while not t.RELEASE.is_set():
        pass
"""
SWALLOWING_COROUTINE = """
import asyncio
async def f():
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep(1)
        return "too late"
"""
BLOCKING_SYNC = """
import tests.test_calls as t
def f():
    t.RELEASE.wait(60)
"""
LOOP_OF = """
import asyncio, threading
async def f():
    return [id(asyncio.get_running_loop()), threading.get_ident()]
"""


@pytest.fixture(autouse=True)
def _release_user_threads() -> Iterator[None]:
    """Abandoned user threads end once the test is over."""
    RELEASE.clear()
    yield
    RELEASE.set()


def _timed(code: str, limit: float) -> dict[str, object]:
    return {**function_request(code, "f"), "timeout_s": limit}


@pytest.mark.asyncio
async def test_coroutine_runs_on_a_loop_of_its_own(executor: RemoteExecutor) -> None:
    """await execute() never runs the user's coroutine on the caller's loop or thread."""
    response = await executor.execute(function_request(LOOP_OF, "f"))
    loop_id, thread_id = response.json_result
    assert loop_id != id(asyncio.get_running_loop())
    assert thread_id != threading.get_ident()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "code",
    [BLOCKING_COROUTINE, SPINNING_COROUTINE, SWALLOWING_COROUTINE],
    ids=["blocks", "spins", "swallows"],
)
async def test_coroutine_limit_holds_whatever_it_does(executor: RemoteExecutor, code: str) -> None:
    """A coroutine that blocks, spins or swallows its cancellation is answered at its limit, loop free."""
    started = time.monotonic()
    execution = asyncio.create_task(executor.execute(_timed(code, 0.5)))
    ticks = 0
    while not execution.done():  # the loop keeps running while the coroutine misbehaves
        await asyncio.sleep(0.01)
        ticks += 1
    response = execution.result()
    assert response.success is False
    assert response.error is not None and response.error.startswith("timed out after 0.5 s")
    assert time.monotonic() - started < 5
    assert ticks > 5


def test_coroutine_limit_holds_in_execute_sync(executor: RemoteExecutor) -> None:
    """execute_sync answers a spinning coroutine at its limit too."""
    response = executor.execute_sync(_timed(SPINNING_COROUTINE, 0.3))
    assert response.error is not None and response.error.startswith("timed out after 0.3 s")
    assert executor.execute_sync(function_request(HELLO, "hello", "next")).success


def test_ping_answers_while_eight_coroutines_spin(executor: RemoteExecutor) -> None:
    """/ping of a real uvicorn worker answers while 8 requests spin; they time out; /ping counts them."""
    with serving(create_app(executor)) as url, ThreadPoolExecutor(8) as clients:
        requests = [
            clients.submit(httpx.post, f"{url}/execute", json=_timed(SPINNING_COROUTINE, 2), timeout=60)
            for _ in range(8)
        ]
        _wait_for(
            lambda: sum(1 for t in threading.enumerate() if t.name == "flash-timed-call") >= 8, "spins", 30
        )
        started = time.monotonic()
        ping = httpx.get(f"{url}/ping", timeout=10)
        ping_s = time.monotonic() - started
        answers = [request.result().json() for request in requests]
        assert ping.status_code == 200 and ping_s < 3, ping_s
        assert all(a["error"].startswith("timed out after 2 s") for a in answers), answers
        assert httpx.get(f"{url}/ping", timeout=10).json() == {"status": "healthy", "abandoned_threads": 8}
        RELEASE.set()
        _wait_for(
            lambda: httpx.get(f"{url}/ping", timeout=10).json()["abandoned_threads"] == 0, "threads", 30
        )
        assert httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "x"), timeout=60).json()[
            "success"
        ]


@pytest.fixture
def small(telemetry: TelemetryCapture) -> Iterator[RemoteExecutor]:
    """An executor with max_workers=4."""
    with RemoteExecutor(
        FlashConfig(max_workers=4),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    ) as executor:
        yield executor


def test_abandoned_threads_fill_the_capacity_then_requests_are_refused(small: RemoteExecutor) -> None:
    """Timed-out threads hold their place: past max_workers execute_sync raises WorkerSaturated."""
    for _ in range(4):
        assert small.execute_sync(_timed(BLOCKING_SYNC, 0.1)).error is not None
    assert small.abandoned_threads == 4
    with pytest.raises(WorkerSaturated, match=r"worker saturated: 0 execution\(s\) running and 4 thread"):
        small.execute_sync(function_request(HELLO, "hello", "refused"))
    RELEASE.set()
    _wait_for(lambda: small.abandoned_threads == 0, "the threads to end", 30)
    assert small.execute_sync(function_request(HELLO, "hello", "again")).success


def test_a_flood_of_timeouts_is_bounded_and_answered_503(small: RemoteExecutor) -> None:
    """150 timing-out requests over HTTP create a bounded number of threads; those refused get 503.

    So does a stream asked for while the capacity is full, before its stream starts.
    """
    before = threading.active_count()
    with serving(create_app(small)) as url, ThreadPoolExecutor(16) as clients:
        answers = list(
            clients.map(
                lambda _: httpx.post(f"{url}/execute", json=_timed(BLOCKING_SYNC, 0.2), timeout=60),
                range(150),
            )
        )
        peak = threading.active_count()
        refused = [a for a in answers if a.status_code == 503]
        assert refused and refused[0].json()["detail"].startswith("worker saturated:")
        assert all(a.json()["error"].startswith("timed out") for a in answers if a.status_code == 200)
        assert peak - before <= 16 + 2 * 4 + 4, peak - before  # clients, pool + abandoned, uvicorn
        stream = httpx.post(f"{url}/execute/stream", json=function_request(HELLO, "hello", "x"), timeout=60)
        assert stream.status_code == 503 and stream.json()["detail"].startswith("worker saturated:")
        RELEASE.set()
        _wait_for(lambda: small.abandoned_threads == 0, "the threads to end", 30)
        assert httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "x"), timeout=60).json()[
            "success"
        ]


@pytest.mark.asyncio
async def test_runpod_handler_answers_saturation_as_a_failed_output(small: RemoteExecutor) -> None:
    """The RunPod handler turns WorkerSaturated into success false with the message."""
    worker = RunPodWorker(lambda: small, flush_each_job=False)
    for _ in range(4):
        await worker.handle({"id": "slow", "input": _timed(BLOCKING_SYNC, 0.1)})
    output = await worker.handle({"id": "refused", "input": function_request(HELLO, "hello", "x")})
    assert output["success"] is False and output["error"].startswith("worker saturated:")


def test_abandoned_threads_gauge() -> None:
    """flash.threads.abandoned reports the threads held past their limit, and their end."""
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader], shutdown_on_exit=False)
    capacity = Capacity(4)
    observe_abandoned_threads(provider, capacity)
    ticket = capacity.thread_started()
    capacity.abandon(ticket)
    assert _gauge(reader) == 1
    capacity.thread_ended(ticket)
    assert _gauge(reader) == 0
    provider.shutdown()


def _gauge(reader: InMemoryMetricReader) -> float:
    data = reader.get_metrics_data()
    assert data is not None
    [value] = [
        point.value  # type: ignore[union-attr]  # a gauge's points carry a value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "flash.threads.abandoned"
        for point in metric.data.data_points
    ]
    return float(value)


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [None, 5], ids=["untimed", "timed"])
async def test_cancelled_error_from_user_code_is_a_failure(
    executor: RemoteExecutor, limit: float | None
) -> None:
    """A coroutine raising CancelledError is answered success false; the caller's task is not cancelled."""
    code = "import asyncio\nasync def f():\n    raise asyncio.CancelledError('mine')\n"
    request = {**function_request(code, "f"), "timeout_s": limit}
    response = await executor.execute(request)
    assert response.success is False
    assert response.error is not None and "CancelledError: mine" in response.error
    assert executor.execute_sync(request).success is False


@pytest.mark.asyncio
async def test_runpod_handler_answers_a_spinning_coroutine_at_its_limit(executor: RemoteExecutor) -> None:
    """The RunPod handler's loop stays free: a spinning coroutine is answered at its limit."""
    worker = RunPodWorker(lambda: executor, flush_each_job=False)
    output = await worker.handle({"id": "spin", "input": _timed(SPINNING_COROUTINE, 0.5)})
    assert output["success"] is False and output["error"].startswith("timed out after 0.5 s")
    assert (await worker.handle({"id": "next", "input": function_request(HELLO, "hello", "x")}))["success"]
