"""Performing the pipeline's blocking steps, and handing whole executions to worker threads.

The executor's pipeline yields each blocking step as a :class:`Call`, and
:meth:`CallRunner.perform` performs it in the thread that drives the pipeline. The
async entry point hands that whole drive to one worker thread
(:meth:`CallRunner.hand_off`): one hand-off per execution, and user code never runs on
the caller's event loop.

A step with a deadline runs in a thread of its own that is left behind (abandoned) if
it overruns: in-process code cannot be interrupted. A coroutine always runs on an event
loop of its own, in a thread of its own when it has a deadline or the driving thread
runs a loop; at its deadline it is cancelled, and if it
swallows the cancellation or never gives control back to its loop, it is abandoned
like sync code. Either way the step answers at the limit.

:meth:`CallRunner.drain` is the shutdown: it refuses new executions, waits for those
running, then makes every pending wait, and every awaiting caller, return with
:class:`WorkerShuttingDown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from otel_flash.exceptions import ExecutionTimeout, WorkerShuttingDown
from otel_flash.runtime.workers import Capacity, ThreadTicket, WorkerPool

Outcome = tuple[Any, BaseException | None]
T = TypeVar("T")
# How long past its deadline a coroutine's thread is given to report its own cancellation.
_COROUTINE_GRACE_S = 0.25
# The part of the shutdown grace kept for interrupted executions to answer with their log.
_SETTLE_S = 0.5
_SHUTTING_DOWN = "worker shutting down: the execution was still running when the worker stopped"


@dataclass(frozen=True, slots=True)
class Call:
    """A blocking step: ``fn(*args, **kwargs)``, optionally before ``deadline`` (monotonic)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] | list[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    limit_s: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative); None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def timed_out(self, cancelled: bool) -> ExecutionTimeout:
        """The error for running past the limit."""
        if cancelled:
            msg = f"timed out after {self.limit_s:g} s; the coroutine was cancelled"
        else:
            msg = (
                f"timed out after {self.limit_s:g} s; its thread may still be running "
                "(in-process code cannot be interrupted; isolation='process' kills it)"
            )
        return ExecutionTimeout(msg)


class CallRunner:
    """Performs steps, hands executions to worker threads, and stops them at shutdown.

    Args:
        max_workers: worker threads for handed-off executions, and the capacity shared
            by executions running and threads abandoned past their time limit.
    """

    def __init__(self, max_workers: int) -> None:
        self.capacity = Capacity(max_workers)
        self._pool = WorkerPool(max_workers, "flash-execute")
        self._lock = threading.Lock()
        self._waits: set[Future[Any]] = set()
        self._answers: set[asyncio.Future[Any]] = set()

    def perform(self, call: Call) -> Outcome:
        """Perform ``call`` here, or in a thread of its own; its outcome.

        Without a deadline, here: a coroutine on a new event loop, unless this thread
        runs a loop already (then in a thread of its own). With one, in a thread of its own.
        """
        try:
            if call.deadline is None:
                result = call.fn(*call.args, **call.kwargs)
                if not inspect.isawaitable(result):
                    return result, None
                if asyncio.events._get_running_loop() is None:  # listed in asyncio.events.__all__
                    return asyncio.run(_awaiting(result)), None
                call = Call(_returning(result))  # never on the caller's loop
            return self._wait(call, self._start_thread(call)), None
        except BaseException as exc:  # handed to the pipeline, which decides what it means
            return None, exc

    async def hand_off(self, drive: Callable[[], T]) -> T:
        """Run ``drive`` in a worker thread with the current context; await its result.

        Cancelling the await leaves ``drive`` running to its end; its result is dropped.
        """
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        context = contextvars.copy_context()

        def job() -> Callable[[], None]:
            try:
                outcome: Outcome = (context.run(drive), None)
            except BaseException as exc:  # delivered to the awaiting caller
                outcome = (None, exc)
            return functools.partial(_answer_threadsafe, answer, outcome)

        self._answers.add(answer)  # one set operation is atomic: no lock needed
        try:
            self._pool.submit(job)
            return await answer
        finally:
            self._answers.discard(answer)

    def drain(self, grace_s: float) -> int:
        """Refuse new executions, wait up to ``grace_s`` for those running; stop the rest.

        Executions still running then are answered ``WorkerShuttingDown``: a pending
        step's wait returns with it (the execution answers with its log so far), and a
        caller awaiting a handed-off execution gets it directly. Returns how many
        executions were still running at the end of the grace period.
        """
        self.capacity.close()
        settle = min(_SETTLE_S, grace_s / 2)
        if self.capacity.wait_idle(grace_s - settle):
            return 0
        left = self.capacity.running
        with self._lock:
            waits = list(self._waits)
        answers = list(self._answers.copy())
        for future in waits:
            _fail(future, WorkerShuttingDown(_SHUTTING_DOWN))
        self.capacity.wait_idle(settle)
        for answer in answers:
            _answer_threadsafe(answer, (None, WorkerShuttingDown(_SHUTTING_DOWN)))
        return left

    def shutdown(self) -> None:
        """Let the worker threads end once their jobs are done."""
        self._pool.shutdown()

    def _start_thread(self, call: Call) -> tuple[Future[Any], ThreadTicket]:
        """Run ``call`` in a new daemon thread with the current context; its future and ticket."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        ticket = self.capacity.thread_started()
        context = contextvars.copy_context()

        def run() -> None:
            try:
                context.run(_complete, call, future)
            finally:
                self.capacity.thread_ended(ticket)

        threading.Thread(target=run, name="flash-timed-call", daemon=True).start()
        return future, ticket

    def _wait(self, call: Call, started: tuple[Future[Any], ThreadTicket]) -> Any:
        """The result of a started thread; past the deadline its thread is abandoned."""
        future, ticket = started
        remaining = call.remaining()
        if remaining is not None and inspect.iscoroutinefunction(call.fn):
            remaining += _COROUTINE_GRACE_S
        with self._lock:
            self._waits.add(future)
        try:
            return future.result(remaining)
        except FutureTimeout:
            self.capacity.abandon(ticket)
            raise call.timed_out(cancelled=False) from None
        except (ExecutionTimeout, WorkerShuttingDown):
            self.capacity.abandon(ticket)  # a coroutine that swallows its cancellation runs on
            raise
        finally:
            with self._lock:
                self._waits.discard(future)


def _returning(value: Any) -> Callable[[], Any]:
    return lambda: value


async def _awaiting(awaitable: Any) -> Any:
    return await awaitable


def _complete(call: Call, future: Future[Any]) -> None:
    """Run ``call`` in this thread (an awaitable on a loop of its own) and settle ``future``."""
    try:
        result = call.fn(*call.args, **call.kwargs)
        if inspect.isawaitable(result):
            asyncio.run(_settle_awaited(call, result, future))
        else:
            _succeed(future, result)
    except BaseException as exc:  # delivered to whoever waits, if anyone still does
        _fail(future, exc)


async def _settle_awaited(call: Call, awaitable: Any, future: Future[Any]) -> None:
    """Await ``awaitable`` until the deadline and settle ``future`` from inside the loop.

    Settled here, not when ``asyncio.run`` returns: a coroutine that swallows its
    cancellation keeps the loop (and this thread) running, but its caller is answered.
    """
    task = asyncio.ensure_future(awaitable)
    done, _pending = await asyncio.wait({task}, timeout=call.remaining())
    if not done:
        task.cancel()
        _fail(future, call.timed_out(cancelled=True))
        return
    try:
        _succeed(future, task.result())
    except BaseException as exc:  # the coroutine's own error, CancelledError included
        _fail(future, exc)


def _succeed(future: Future[Any], value: Any) -> None:
    with contextlib.suppress(InvalidStateError):  # already answered (shutdown): nobody reads it
        future.set_result(value)


def _fail(future: Future[Any], error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # already answered (shutdown or the deadline)
        future.set_exception(error)


def _answer_threadsafe(answer: asyncio.Future[Any], outcome: Outcome) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to read the answer
        answer.get_loop().call_soon_threadsafe(_answer, answer, outcome)


def _answer(answer: asyncio.Future[Any], outcome: Outcome) -> None:
    """Settle ``answer`` on its loop, unless it was settled (shutdown) or cancelled already."""
    if answer.done():
        return
    value, error = outcome
    if error is None:
        answer.set_result(value)
    else:
        answer.set_exception(error)
