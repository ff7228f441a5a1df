"""Concurrency: 64 executions at once (threads, asyncio), 1,000 lines each, vs one after another."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from otel_flash import FlashConfig, FunctionResponse, RemoteExecutor

EXECUTIONS = 64
LINES = 1_000
CODE = """
import logging
log = logging.getLogger("bench.concurrent")

def tagged(tag, lines):
    for i in range(lines):
        log.info("%s line %d", tag, i)
    return tag
"""


def _request(i: int) -> dict[str, Any]:
    return {
        "function_name": "tagged",
        "function_code": CODE,
        "args": [f"req{i}", LINES],
        "serialization_format": "json",
    }


def _crossed(responses: list[FunctionResponse]) -> int:
    return sum(
        1
        for i, response in enumerate(responses)
        for line in (response.stdout or "").splitlines()[:-1]
        if f"req{i} " not in line
    )


def main() -> None:
    """Print throughput of each mode relative to sequential, and lines that crossed executions."""
    config = FlashConfig(max_log_lines=2 * LINES, max_workers=EXECUTIONS)
    with RemoteExecutor(config) as executor:
        executor.execute_sync(_request(0))
        started = time.perf_counter()
        sequential = [executor.execute_sync(_request(i)) for i in range(EXECUTIONS)]
        sequential_s = time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(EXECUTIONS) as pool:
            threaded = list(pool.map(lambda i: executor.execute_sync(_request(i)), range(EXECUTIONS)))
        threaded_s = time.perf_counter() - started

        async def gathered() -> list[FunctionResponse]:
            return list(await asyncio.gather(*(executor.execute(_request(i)) for i in range(EXECUTIONS))))

        started = time.perf_counter()
        asynchronous = asyncio.run(gathered())
        async_s = time.perf_counter() - started
    total = EXECUTIONS * LINES
    for name, seconds, responses in (
        ("sequential", sequential_s, sequential),
        ("64 threads", threaded_s, threaded),
        ("64 asyncio tasks", async_s, asynchronous),
    ):
        print(
            f"{name:17s} {total / seconds:10,.0f} lines/s  ratio to sequential {sequential_s / seconds:4.2f}x"
            f"  crossed lines: {_crossed(responses)}"
        )


if __name__ == "__main__":
    main()
