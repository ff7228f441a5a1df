"""A line belongs to exactly one execution, whatever runs concurrently (32 executions per case).

Every case runs with ``isolation="thread"`` and ``isolation="process"``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from otel_flash import FunctionResponse, RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

N = 32
LINES = 20
TAGGED = """
import logging, time
log = logging.getLogger("tagged")

def tagged(tag, lines):
    for i in range(lines):
        log.info("%s log %d", tag, i)
        print(f"{tag} print {i}")
        time.sleep(0)
    return tag
"""
ASYNC_TAGGED = """
import asyncio, logging
log = logging.getLogger("tagged")

async def tagged(tag, lines):
    for i in range(lines):
        log.info("%s log %d", tag, i)
        print(f"{tag} print {i}")
        await asyncio.sleep(0)
    return tag
"""
THREADED = """
import logging, threading
from concurrent.futures import ThreadPoolExecutor
log = logging.getLogger("tagged")

def emit(tag, worker, lines):
    for i in range(lines):
        log.info("%s %s log %d", tag, worker, i)
        print(f"{tag} {worker} print {i}")

def tagged(tag, lines):
    threads = [threading.Thread(target=emit, args=(tag, f"t{n}", lines)) for n in range(2)]
    for thread in threads:
        thread.start()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: emit(tag, f"p{n}", lines), range(2)))
    for thread in threads:
        thread.join()
    return tag
"""


@pytest.fixture(params=["thread", "process"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    """Both isolation modes must keep every line in its own execution."""
    mode: Isolation = request.param
    return mode


def _assert_isolated(responses: list[FunctionResponse], per_execution: int) -> None:
    for i, response in enumerate(responses):
        assert response.success, response.error
        lines = stdout_lines(response.stdout)
        foreign = [line for line in lines if f"req{i} " not in line]
        assert foreign == [], f"req{i} got {foreign[:3]}"
        assert len(lines) == per_execution, f"req{i} kept {len(lines)} of {per_execution}"


def _request(code: str, i: int, **extra: Any) -> dict[str, Any]:
    return {**function_request(code, "tagged", f"req{i}", LINES), **extra}


def test_threads_calling_execute_sync(executor: RemoteExecutor) -> None:
    """32 execute_sync calls from 32 threads at once each get exactly their own lines."""
    with ThreadPoolExecutor(N) as pool:
        responses = list(pool.map(lambda i: executor.execute_sync(_request(TAGGED, i)), range(N)))
    _assert_isolated(responses, 2 * LINES)


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [ASYNC_TAGGED, TAGGED], ids=["async-functions", "sync-functions"])
async def test_coroutines_under_one_loop(executor: RemoteExecutor, code: str) -> None:
    """32 execute() coroutines gathered on one event loop each get exactly their own lines."""
    responses = await asyncio.gather(*(executor.execute(_request(code, i)) for i in range(N)))
    _assert_isolated(list(responses), 2 * LINES)


def test_threads_started_by_user_code(executor: RemoteExecutor) -> None:
    """Lines from threads and pool workers that the function starts land in its own stdout."""
    with ThreadPoolExecutor(N) as pool:
        responses = list(pool.map(lambda i: executor.execute_sync(_request(THREADED, i)), range(N)))
    _assert_isolated(responses, 4 * 2 * LINES)


def test_executions_sharing_a_caller_trace(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """Same traceparent for all: one trace, yet each stdout holds only its own lines."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with ThreadPoolExecutor(N) as pool:
        responses = list(
            pool.map(
                lambda i: executor.execute_sync(_request(TAGGED, i, trace_context={"traceparent": parent})),
                range(N),
            )
        )
    _assert_isolated(responses, 2 * LINES)
    assert {response.trace_id for response in responses} == {"0af7651916cd43dd8448eb211c80319c"}
    roots = [span for span in telemetry.spans() if span.name == "flash.execute"]
    assert len(roots) == N
    assert all(span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331 for span in roots)


def test_malformed_trace_context_is_ignored_with_a_warning(executor: RemoteExecutor) -> None:
    """A bad traceparent starts a new trace and says so in stdout; the call still succeeds."""
    response = executor.execute_sync(_request(TAGGED, 0, trace_context={"traceparent": "garbage"}))
    assert response.success
    assert "ignoring malformed trace_context traceparent 'garbage'" in (response.stdout or "")


@pytest.mark.parametrize("carrier", [["not", "a", "dict"], {"traceparent": 7, "baggage": "k=v"}])
def test_non_string_trace_context_is_ignored(executor: RemoteExecutor, carrier: object) -> None:
    """A trace_context of the wrong shape is dropped with a warning; the call still runs."""
    response = executor.execute_sync(_request(TAGGED, 0, trace_context=carrier))
    assert response.success, response.error
    assert "| WARN | ignoring trace_context" in (response.stdout or "")
