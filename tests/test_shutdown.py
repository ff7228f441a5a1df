"""A real ``otel-flash serve`` stopped by SIGTERM while requests run, and surviving interrupt_main."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.requests import HELLO, function_request, stdout_lines
from tests.stack import ServedWorker

GRACE_S = 2
LONG = """
import pathlib, time
def f(marker):
    print("started")
    pathlib.Path(marker).touch()
    time.sleep(60)
"""
SPINNING = """
import pathlib
async def f(marker):
    pathlib.Path(marker).touch()
    while True:
        pass
"""


@pytest.fixture
def served() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`otel-flash serve` with a 2 s shutdown grace period, on a free loopback port."""
    with ServedWorker({"FLASH_SHUTDOWN_GRACE_S": str(GRACE_S)}) as worker:
        assert worker.process is not None
        yield worker.url, worker.process


def test_sigterm_answers_running_requests_and_exits_within_grace(
    served: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """Requests still running at SIGTERM (a spinning coroutine too) are answered 'worker shutting
    down'; the process exits soon after."""
    url, process = served
    markers = [tmp_path / "untimed", tmp_path / "timed", tmp_path / "spinning"]
    untimed = function_request(LONG, "f", str(markers[0]))
    timed = {**function_request(LONG, "f", str(markers[1])), "timeout_s": 120}
    spinning = function_request(SPINNING, "f", str(markers[2]))
    with ThreadPoolExecutor(3) as clients:
        answers = [
            clients.submit(httpx.post, f"{url}/execute", json=body, timeout=60)
            for body in (untimed, timed, spinning)
        ]
        deadline = time.monotonic() + 30
        while not all(marker.exists() for marker in markers):
            assert time.monotonic() < deadline, "the functions never started"
            time.sleep(0.02)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        bodies = [answer.result().json() for answer in answers]
        answered_s = time.monotonic() - stopped
        process.wait(timeout=30)
        exited_s = time.monotonic() - stopped
    print(f"grace {GRACE_S} s: answered after {answered_s:.2f} s, exited after {exited_s:.2f} s")
    assert process.returncode == 0
    for body in bodies:
        assert body["success"] is False
        assert body["error"].startswith("worker shutting down"), body["error"]
    assert stdout_lines(bodies[1]["stdout"])[0] == "started"  # the timed wait returned: its log is kept
    # the budget the issue sets is grace + 2 s; a couple more seconds of room for loaded CI machines
    assert answered_s < GRACE_S + 2, answered_s
    assert exited_s < GRACE_S + 4, exited_s


def test_new_requests_during_shutdown_are_refused(
    served: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """While draining, a new request is answered 503 (or the socket is already closed)."""
    url, process = served
    marker = tmp_path / "started"
    with ThreadPoolExecutor(1) as clients:
        running = clients.submit(
            httpx.post, f"{url}/execute", json=function_request(LONG, "f", str(marker)), timeout=60
        )
        while not marker.exists():
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        try:
            late = httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "late"), timeout=30)
            assert late.status_code == 503 and late.json()["detail"].startswith("worker shutting down")
        except httpx.TransportError:
            pass  # uvicorn already stopped accepting connections: refused as well
        assert running.result().json()["error"].startswith("worker shutting down")
    assert process.wait(timeout=30) == 0


def test_interrupt_main_does_not_stop_the_worker(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    """_thread.interrupt_main() from a request leaves uvicorn serving; the request is warned."""
    url, process = served
    code = "import _thread\ndef f():\n    _thread.interrupt_main()\n    return 'done'\n"
    body = httpx.post(f"{url}/execute", json=function_request(code, "f"), timeout=30).json()
    assert body["json_result"] == "done"
    assert stdout_lines(body["stdout"])[-1].endswith("otel_flash kept the worker running")
    time.sleep(0.5)  # an interrupt, had it landed, would have stopped the server by now
    assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
    assert httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "x"), timeout=30).json()[
        "success"
    ]
    assert process.poll() is None
