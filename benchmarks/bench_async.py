"""The async entry point: a trivial request through ``await execute`` vs ``execute_sync``, and its floor.

The floor is the bare mechanism any hand-off to a waiting thread pays, measured in the same
run: a coroutine puts a job on a ``SimpleQueue`` for a thread blocked on it, which answers
with ``loop.call_soon_threadsafe(future.set_result)``. It is two thread wake-ups; on a machine
whose idle cores sleep it costs about what ``execute_sync`` does, so it bounds the ratio.
The concurrent rows keep N awaits in flight (N tasks, each awaiting one request after
another) and print the time per request against ``execute_sync`` one after another, the
process CPU time per request, and how many worker threads the pool started.
"""

from __future__ import annotations

import asyncio
import queue
import statistics
import threading
import time
from collections.abc import Awaitable, Callable

from benchmarks.bench_execution import CODE as SYNC_CODE
from benchmarks.bench_execution import _per_call_us
from otel_flash import FlashConfig, RemoteExecutor

CALLS = 500
REPEATS = 9
CONCURRENCY = (8, 32)
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
    return _per_call_us(lambda: executor.execute_sync(request), CALLS)


def _awaited_us(one: Callable[[], Awaitable[object]], tasks: int = 1) -> tuple[float, float]:
    """Wall and process CPU µs per request with ``tasks`` awaits of ``one()`` in flight."""

    async def client() -> None:
        for _ in range(CALLS // tasks):
            await one()

    async def clients() -> None:
        await asyncio.gather(*(client() for _ in range(tasks)))

    cpu, started = time.process_time_ns(), time.perf_counter_ns()
    asyncio.run(clients())
    done = CALLS // tasks * tasks * 1000
    return (time.perf_counter_ns() - started) / done, (time.process_time_ns() - cpu) / done


class BareHandOff:
    """The floor: one thread blocked on a ``SimpleQueue``, answering through ``call_soon_threadsafe``."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def round_trip(self) -> asyncio.Future[None]:
        """Hand the thread a future to settle from its side."""
        answer = asyncio.get_running_loop().create_future()
        self._jobs.put(answer)
        return answer

    def close(self) -> None:
        """End the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (answer := self._jobs.get()) is not None:
            answer.get_loop().call_soon_threadsafe(answer.set_result, None)


def _one_by_one(executor: RemoteExecutor, plain: dict[str, str], coroutine: dict[str, str]) -> None:
    samples: dict[str, list[float]] = {key: [] for key in ("sync", "async", "bare", "sync-co", "async-co")}
    bare = BareHandOff()
    for _ in range(REPEATS):  # interleaved, so drift hits all alike
        samples["sync"].append(_sync_us(executor, plain))
        samples["async"].append(_awaited_us(lambda: executor.execute(plain))[0])
        samples["bare"].append(_awaited_us(bare.round_trip)[0])
        samples["sync-co"].append(_sync_us(executor, coroutine))
        samples["async-co"].append(_awaited_us(lambda: executor.execute(coroutine))[0])
    bare.close()
    low = {key: min(values) for key, values in samples.items()}
    mid = {key: statistics.median(values) for key, values in samples.items()}
    for label, key in (
        ("execute_sync, sync function", "sync"),
        ("await execute, sync function", "async"),
        ("bare hand-off round trip (the floor)", "bare"),
        ("execute_sync, async function", "sync-co"),
        ("await execute, async function", "async-co"),
    ):
        print(f"{label + ':':42} {low[key]:8.1f} us min {mid[key]:8.1f} us median")
    for label, f in (("min", low), ("median", mid)):
        print(
            f"{label:>6}: await execute/execute_sync {f['async'] / f['sync']:.2f}x (goal <= 1.3x), "
            f"(await execute - execute_sync)/bare round trip {(f['async'] - f['sync']) / f['bare']:.2f}, "
            f"bare/execute_sync {f['bare'] / f['sync']:.2f}x, "
            f"async function {f['async-co'] / f['sync-co']:.2f}x"
        )


def _concurrent(executor: RemoteExecutor, plain: dict[str, str]) -> None:
    rows: dict[int, list[tuple[float, float]]] = {tasks: [] for tasks in CONCURRENCY}
    sequential: list[float] = []
    for _ in range(REPEATS // 3):
        sequential.append(_sync_us(executor, plain))
        for tasks in CONCURRENCY:
            rows[tasks].append(_awaited_us(lambda: executor.execute(plain), tasks))
    sync = statistics.median(sequential)
    threads = sum(1 for thread in threading.enumerate() if thread.name.startswith("flash-execute"))
    for tasks, figures in rows.items():
        wall = statistics.median(wall for wall, _cpu in figures)
        cpu = statistics.median(cpu for _wall, cpu in figures)
        print(
            f"{tasks:2} awaits in flight: {wall:6.1f} us per request ({wall / sync:.2f}x execute_sync "
            f"one by one, {sync:.1f} us), CPU {cpu:6.1f} us per request"
        )
    print(f"worker threads started: {threads} (max_workers={executor.config.max_workers})")


def main() -> None:
    """Print µs per trivial request through each entry point (min and median of the interleaved
    rounds: a loaded machine skews single rounds), the floor, their ratios, and N awaits in flight."""
    plain = {"function_name": "trivial", "function_code": CODE, "serialization_format": "json"}
    coroutine = {**plain, "function_name": "trivial_async"}
    with RemoteExecutor(FlashConfig()) as executor:
        executor.execute_sync(plain)  # warm up: compile cache, loggers, worker thread
        asyncio.run(executor.execute(plain))
        _one_by_one(executor, plain, coroutine)
        _concurrent(executor, plain)


if __name__ == "__main__":
    main()
