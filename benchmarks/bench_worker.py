"""HTTP worker: /execute and /execute/stream against in-process execute, live lines, /ping under load."""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.server import create_app
from otel_flash.testing import capture_telemetry

CALLS = 200
REPEATS = 5
TRIVIAL = {
    "function_name": "trivial",
    "function_code": (
        "import logging\n\ndef trivial():\n    logging.getLogger('b').info('one line')\n    return 42\n"
    ),
    "serialization_format": "json",
}
SLOW = {
    "function_name": "slow",
    "function_code": (
        "import logging, time\n\ndef slow(s):\n    logging.getLogger('b').info('first')\n"
        "    time.sleep(s)\n    logging.getLogger('b').info('last')\n    return s\n"
    ),
    "args": [0.2],
    "serialization_format": "json",
}


@contextmanager
def _serving(executor: RemoteExecutor) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(executor), log_config=None, ws="none", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _median_us(call: Callable[[], Any], calls: int = CALLS) -> float:
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        runs.append((time.perf_counter_ns() - started) / calls / 1000)
    return statistics.median(runs)


def _stream(client: httpx.Client, request: dict[str, Any]) -> tuple[float, float]:
    """Seconds to the first line and to the end of the stream."""
    started = time.perf_counter()
    first = 0.0
    with client.stream("POST", "/execute/stream", json=request) as response:
        for line in response.iter_lines():
            if line and not first:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


def main() -> None:
    """Print the figures."""
    telemetry = capture_telemetry()
    loop = asyncio.new_event_loop()
    with RemoteExecutor(
        FlashConfig(), tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        in_process = _median_us(lambda: loop.run_until_complete(executor.execute(TRIVIAL)))
        with _serving(executor) as url, httpx.Client(base_url=url, timeout=60) as client:
            plain = _median_us(lambda: client.post("/execute", json=TRIVIAL))
            streamed = _median_us(lambda: _stream(client, TRIVIAL))
            live = [_stream(client, SLOW) for _ in range(REPEATS)]
            idle_ping = _median_us(lambda: client.get("/ping"), 50)
            with ThreadPoolExecutor(8) as pool:
                busy = [pool.submit(client.post, "/execute", json={**SLOW, "args": [3.0]}) for _ in range(8)]
                time.sleep(0.2)
                loaded_ping = _median_us(lambda: client.get("/ping"), 20)
                for future in busy:
                    future.result()
        telemetry.clear()
    loop.close()
    telemetry.shutdown()
    first = statistics.median(f for f, _ in live)
    total = statistics.median(t for _, t in live)
    print(f"in-process execute(): {in_process:.0f} us per trivial request")
    print(f"POST /execute: {plain:.0f} us ({plain / in_process:.1f}x in-process)")
    print(f"POST /execute/stream: {streamed:.0f} us ({streamed / plain:.2f}x /execute)")
    print(
        f"live line (function logs, sleeps 200 ms, logs): first line after {first * 1000:.1f} ms, "
        f"end after {total * 1000:.0f} ms (first/end = {first / total:.3f})"
    )
    print(
        f"GET /ping: {idle_ping:.0f} us idle, {loaded_ping:.0f} us while 8 sync functions sleep "
        f"({loaded_ping / idle_ping:.1f}x)"
    )
