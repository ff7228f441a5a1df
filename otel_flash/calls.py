"""Performing the pipeline's blocking steps: in this thread, in a worker thread, or awaited.

The executor's pipeline yields each step as a :class:`Call`; the sync and the async
entry point perform it with :func:`perform_sync` / :func:`perform_async`. A step with
a deadline runs where it can be abandoned: a coroutine is cancelled, sync code runs in
a thread of its own that is left behind (in-process code cannot be interrupted).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from otel_flash.exceptions import ExecutionTimeout

Outcome = tuple[Any, BaseException | None]


@dataclass(frozen=True, slots=True)
class Call:
    """A blocking step: ``fn(*args, **kwargs)``, optionally before ``deadline`` (monotonic)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] | list[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    limit_s: float | None = None

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, (self.deadline or 0.0) - time.monotonic())

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


def perform_sync(call: Call) -> Outcome:
    """Perform ``call`` in this thread (or, with a deadline, in a thread of its own)."""
    try:
        if call.deadline is not None and not inspect.iscoroutinefunction(call.fn):
            try:
                result = _start_thread(call).result(timeout=call.remaining())
            except FutureTimeout:
                return None, call.timed_out(cancelled=False)
        else:
            result = call.fn(*call.args, **call.kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(call, result))
        return result, None
    except BaseException as exc:  # handed to the pipeline, which decides what it means
        return None, exc


async def perform_async(call: Call, pool: ThreadPoolExecutor) -> Outcome:
    """Await ``call`` without blocking the loop: sync code runs in ``pool`` (or its own thread)."""
    try:
        if inspect.iscoroutinefunction(call.fn):
            return await _awaited(call, call.fn(*call.args, **call.kwargs)), None
        if call.deadline is not None:
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(_start_thread(call)), call.remaining())
            except TimeoutError:
                return None, call.timed_out(cancelled=False)
        else:
            run = functools.partial(contextvars.copy_context().run, call.fn, *call.args, **call.kwargs)
            result = await asyncio.get_running_loop().run_in_executor(pool, run)
        if inspect.isawaitable(result):
            result = await _awaited(call, result)
        return result, None
    except BaseException as exc:  # handed to the pipeline, which decides what it means
        return None, exc


async def _awaited(call: Call, awaitable: Any) -> Any:
    if call.deadline is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, call.remaining())
    except TimeoutError:
        raise call.timed_out(cancelled=True) from None


def _start_thread(call: Call) -> Future[Any]:
    """Run ``call`` in a new daemon thread with the current context; its future."""
    future: Future[Any] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(context.run(call.fn, *call.args, **call.kwargs))
        except BaseException as exc:  # delivered to whoever waits, if anyone still does
            future.set_exception(exc)

    threading.Thread(target=run, name="flash-timed-call", daemon=True).start()
    return future
