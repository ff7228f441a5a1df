"""The worker pool: blocking executions run at once, waiting jobs run, the last idle thread is reused."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.runtime.workers import WorkerPool
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

AT_ONCE = 8
# Met by AT_ONCE executions at once, or broken after its timeout (then each says so).
BARRIER = threading.Barrier(AT_ONCE, timeout=30)
MEETING = """
import threading
import tests.test_workers as t
def f():
    try:
        t.BARRIER.wait()
    except threading.BrokenBarrierError:
        return "broken"
    return "met"
"""


class Jobs:
    """Jobs for a pool that record the thread running them and can be held until released."""

    def __init__(self) -> None:
        self.threads: dict[str, str] = {}
        self.answered: dict[str, threading.Event] = {}

    def job(self, name: str, hold: threading.Event | None = None) -> Callable[[], Callable[[], None]]:
        """A job that waits for ``hold`` (if given), then records its thread; answered sets an event."""
        answered = self.answered[name] = threading.Event()

        def run() -> Callable[[], None]:
            if hold is not None:
                hold.wait(30)
            self.threads[name] = threading.current_thread().name
            return answered.set

        return run

    def wait(self, *names: str) -> None:
        """Wait until the jobs ``names`` have answered."""
        for name in names:
            assert self.answered[name].wait(30), f"job {name} never answered"


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    """A pool of two threads."""
    pool = WorkerPool(2, "test-pool")
    yield pool
    pool.shutdown()


@pytest.mark.asyncio
async def test_max_workers_executions_that_block_run_at_once(telemetry: TelemetryCapture) -> None:
    """``max_workers`` awaited executions that block run together, on new threads and on idle ones."""
    with RemoteExecutor(
        FlashConfig(max_workers=AT_ONCE),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    ) as executor:
        request = function_request(MEETING, "f")
        BARRIER.reset()
        started = await asyncio.gather(*(executor.execute(request) for _ in range(AT_ONCE)))
        woken = await asyncio.gather(*(executor.execute(request) for _ in range(AT_ONCE)))
    assert [response.json_result for response in started + woken] == ["met"] * AT_ONCE * 2


def test_a_job_submitted_while_every_thread_is_busy_runs_when_one_frees_up(pool: WorkerPool) -> None:
    """Past ``size`` busy threads a job waits, and runs on the first thread that finishes."""
    jobs, hold = Jobs(), threading.Event()
    pool.submit(jobs.job("first", hold))
    pool.submit(jobs.job("second", hold))
    pool.submit(jobs.job("third"))
    hold.set()
    jobs.wait("first", "second", "third")
    assert jobs.threads["third"] in {jobs.threads["first"], jobs.threads["second"]}


def test_the_thread_that_went_idle_last_takes_the_next_job(pool: WorkerPool) -> None:
    """Idle threads are reused last-in first-out, so a light load keeps running on one warm thread."""
    jobs, first_hold, second_hold = Jobs(), threading.Event(), threading.Event()
    pool.submit(jobs.job("first", first_hold))
    pool.submit(jobs.job("second", second_hold))
    first_hold.set()
    jobs.wait("first")
    second_hold.set()
    jobs.wait("second")
    pool.submit(jobs.job("next"))
    jobs.wait("next")
    assert jobs.threads["first"] != jobs.threads["second"]
    assert jobs.threads["next"] == jobs.threads["second"]


def test_shutdown_ends_the_threads_once_their_jobs_are_done(pool: WorkerPool) -> None:
    """Shutdown lets a running job finish, then every thread of the pool ends."""
    jobs, hold = Jobs(), threading.Event()
    pool.submit(jobs.job("idle"))
    jobs.wait("idle")
    pool.submit(jobs.job("running", hold))
    pool.submit(jobs.job("waiting", hold))
    pool.shutdown()
    hold.set()
    jobs.wait("running", "waiting")
    for thread in threading.enumerate():
        if thread.name.startswith("test-pool"):
            thread.join(30)
            assert not thread.is_alive()
