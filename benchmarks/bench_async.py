"""The async entry point: a trivial request through ``await execute`` vs ``execute_sync``."""

from __future__ import annotations

import asyncio
import time

from benchmarks.bench_execution import CODE as SYNC_CODE
from otel_flash import FlashConfig, RemoteExecutor

CALLS = 500
REPEATS = 11
CODE = (
    SYNC_CODE
    + """
async def trivial_async():
    log.info("one log line")
    print("one print")
    return 42
"""
)


def _sync_us(executor: RemoteExecutor, request: dict[str, str]) -> float:
    started = time.perf_counter_ns()
    for _ in range(CALLS):
        executor.execute_sync(request)
    return (time.perf_counter_ns() - started) / CALLS / 1000


async def _async_us(executor: RemoteExecutor, request: dict[str, str]) -> float:
    started = time.perf_counter_ns()
    for _ in range(CALLS):
        await executor.execute(request)
    return (time.perf_counter_ns() - started) / CALLS / 1000


def main() -> None:
    """Print µs per trivial request through each entry point (best of the interleaved rounds:
    a loaded machine skews single rounds), and their ratio (goal <= 1.3x)."""
    plain = {"function_name": "trivial", "function_code": CODE, "serialization_format": "json"}
    coroutine = {**plain, "function_name": "trivial_async"}
    samples: dict[str, list[float]] = {"sync": [], "async": [], "sync-coro": [], "async-coro": []}
    with RemoteExecutor(FlashConfig()) as executor:
        executor.execute_sync(plain)  # warm up: compile cache, loggers, worker thread
        asyncio.run(executor.execute(plain))
        for _ in range(REPEATS):  # interleaved, so drift hits all alike
            samples["sync"].append(_sync_us(executor, plain))
            samples["async"].append(asyncio.run(_async_us(executor, plain)))
            samples["sync-coro"].append(_sync_us(executor, coroutine))
            samples["async-coro"].append(asyncio.run(_async_us(executor, coroutine)))
    sync, awaited, sync_coro, async_coro = (min(samples[key]) for key in samples)
    print(f"execute_sync, sync function:             {sync:8.1f} us")
    print(f"await execute, sync function:            {awaited:8.1f} us")
    print(f"ratio await execute/execute_sync:        {awaited / sync:8.2f}x (goal <= 1.3x)")
    print(f"execute_sync, async function:            {sync_coro:8.1f} us")
    print(f"await execute, async function:           {async_coro:8.1f} us")
    print(f"ratio for an async function:             {async_coro / sync_coro:8.2f}x")


if __name__ == "__main__":
    main()
