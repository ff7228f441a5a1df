"""``isolation="process"``: whatever a child sends, the worker's memory stays bounded, its trace its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil
import pytest

from otel_flash import FunctionResponse, RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

GROWTH_LIMIT_MIB = 100  # generous: a 150-250 MB payload used to cost the worker 430-940 MiB
# user code that finds the child's control socket (its only socket) and writes to it directly
CONTROL = """
import json, os, socket, stat, struct

def control():
    for name in os.listdir("/proc/self/fd"):
        try:
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                return socket.socket(fileno=os.dup(int(name)))
        except OSError:
            pass
"""
FORGED_FRAME = (
    CONTROL
    + """
def f():
    sock = control()
    sock.sendall(struct.pack(">I", 250_000_000) + b'{"op":"log","body":"')
    chunk = b"a" * (1 << 20)
    for _ in range(250):
        sock.sendall(chunk)
    return "sent"
"""
)
FORGED_WRITE = (
    CONTROL
    + """
def f():
    line = {"op": "write", "stream": "stdout", "text": "forged\\n", "trace_id": 7, "span_id": 9}
    body = json.dumps(line).encode()
    control().sendall(struct.pack(">I", len(body)) + body)
    return 1
"""
)
HUGE_RECORD = """
import logging

def f():
    logging.getLogger("big").warning("x" * 150_000_000)
    return "logged"
"""


@pytest.fixture
def isolation() -> Isolation:
    """Every test here runs in the process mode."""
    return "process"


def _peak_growth_mib(action: Callable[[], FunctionResponse]) -> tuple[FunctionResponse, float]:
    """Run ``action``; its response and the largest growth of this process's RSS meanwhile, in MiB."""
    process = psutil.Process()
    base = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = action()
    finally:
        done.set()
        sampler.join()
    return response, (peak - base) / (1 << 20)


def _assert_next_is_clean(executor: RemoteExecutor) -> None:
    response = executor.execute_sync(function_request("def f():\n    print('clean')\n    return 2\n", "f"))
    assert response.success, response.error
    assert stdout_lines(response.stdout) == ["clean"]


def test_forged_oversized_frame_ends_the_child_not_the_workers_memory(executor: RemoteExecutor) -> None:
    """A 250 MB frame written to the control socket is refused from its header; the child is killed."""
    response, growth = _peak_growth_mib(lambda: executor.execute_sync(function_request(FORGED_FRAME, "f")))
    assert not response.success
    assert "the function's process was killed: it sent a frame of 250000000 bytes, over the limit of" in (
        response.error or ""
    )
    assert growth < GROWTH_LIMIT_MIB
    _assert_next_is_clean(executor)


def test_huge_log_record_is_cut_in_the_child(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """A 150 MB log record arrives cut to max_line_bytes, and the worker barely grows."""
    response, growth = _peak_growth_mib(lambda: executor.execute_sync(function_request(HUGE_RECORD, "f")))
    assert response.success, response.error
    assert growth < GROWTH_LIMIT_MIB
    [body] = [body for body in telemetry.log_bodies() if body.startswith("xxx")]
    assert len(body) <= executor.config.max_line_bytes + 16
    _assert_next_is_clean(executor)


def test_results_and_errors_larger_than_a_frame(executor: RemoteExecutor) -> None:
    """A result many frames long arrives whole; an error message that long arrives cut, never refused."""
    code = """
def big(kind):
    if kind == "error":
        raise ValueError("z" * 5_000_000)
    return "é" * 3_000_000
"""
    request = {**function_request(code, "big", "result"), "serialization_format": "json"}
    response = executor.execute_sync(request)
    assert response.success, response.error
    assert response.json_result == "é" * 3_000_000
    failed = executor.execute_sync(function_request(code, "big", "error"))
    assert not failed.success
    assert (failed.error or "").startswith("ValueError: zzz")
    assert len(failed.error or "") < 1_000_000


def test_spans_of_another_trace_are_dropped(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """A span a child starts in a trace of its own never reaches the worker's processors; its others do."""
    code = """
from opentelemetry import context, trace

def f():
    tracer = trace.get_tracer("user")
    with tracer.start_as_current_span("foreign", context=context.Context()):
        pass
    with tracer.start_as_current_span("own"):
        print("inside own")
    return 1
"""
    response = executor.execute_sync(function_request(code, "f"))
    assert response.success, response.error
    names = [span.name for span in telemetry.spans()]
    assert "own" in names and "foreign" not in names
    assert {span.context.trace_id for span in telemetry.spans() if span.context} == {
        int(response.trace_id or "0", 16)
    }


def test_forged_write_of_another_trace_stays_in_the_execution(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """A line claiming another trace's span is still captured, in the execution's trace."""
    response = executor.execute_sync(function_request(FORGED_WRITE, "f"))
    assert response.success, response.error
    assert "forged" in stdout_lines(response.stdout)
    [record] = [r.log_record for r in telemetry.log_records() if r.log_record.body == "forged"]
    assert record.trace_id == int(response.trace_id or "0", 16)
