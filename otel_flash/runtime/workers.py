"""The threads that run executions: a pool of daemon threads, and the ledger of capacity.

:class:`WorkerPool` runs each handed-off execution in one of at most ``size`` daemon
threads. Unlike ``ThreadPoolExecutor``'s, they are not joined at interpreter exit, so
a thread stuck in user code never holds the process open past shutdown.

:class:`Capacity` counts the executions running and the threads left behind past a
time limit (still running user code nobody waits for). Together they never exceed the
limit: an execution that would is refused with :class:`WorkerSaturated` before it
starts, and so is every execution once the capacity is closed for shutdown.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_flash.exceptions import WorkerSaturated
from otel_flash.semconv import THREADS_ABANDONED_METRIC

# A job does its work and returns how to hand its result over, which the thread calls last.
Job = Callable[[], Callable[[], None]]


class _Idle:
    """The lock an idle thread sleeps on until a job is submitted (or the pool shuts down)."""

    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()


class WorkerPool:
    """At most ``size`` daemon threads running submitted jobs; a job must not raise.

    Jobs wait in one backlog, oldest first, and a thread takes the next one before it
    goes idle, so under load jobs run on threads already awake. A job submitted wakes
    the thread that went idle last (its caches are the warmest; a light load keeps
    running on one thread while the others sleep), else starts a new one while under
    ``size``, unless a thread woken before has not looked at the backlog yet: one
    thread wakes at a time, and a woken thread that finds more jobs waiting wakes the
    next. So a burst wakes only the threads it needs, and every job still starts while
    fewer than ``size`` run: a job that blocks never holds up another.

    A job returns its hand-over (waking whoever waits for it). A thread running alone
    calls it after putting itself on the idle stack, so the woken caller finds the GIL
    free instead of waking a second time for it; with other threads busy, before taking
    its next job, so a job submitted in answer to the hand-over runs on this thread,
    already awake, rather than on one woken for it.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._lock = threading.Lock()
        self._backlog: collections.deque[Job] = collections.deque()
        self._idle: list[_Idle] = []
        self._threads = 0
        self._started = 0
        self._waking = False
        self._closed = False

    def submit(self, job: Job) -> None:
        """Queue ``job``, waking or starting a thread for it unless one is waking already."""
        with self._lock:
            self._backlog.append(job)
            wake = self._wake()
        wake()

    def shutdown(self) -> None:
        """Let every thread end once the jobs submitted before now are done."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for each in idle:
            each.wake.release()

    def _wake(self) -> Callable[[], None]:
        """Called under the lock: how to wake a thread for the backlog (nothing if one is waking)."""
        if self._waking:
            return _nothing
        if self._idle:
            self._waking = True
            return self._idle.pop().wake.release
        if self._threads < self._size:
            self._waking = True
            self._threads += 1
            self._started += 1
            return functools.partial(self._start, f"{self._name}-{self._started}")
        return _nothing

    def _start(self, name: str) -> None:
        """Start a thread counted by :meth:`_wake`; uncount it if it cannot start."""
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        try:
            # Started in an empty context: a thread instrumented to inherit the context it was
            # started in would otherwise hold the first execution's context for its whole life.
            contextvars.Context().run(thread.start)
        except BaseException:  # "can't start new thread": the next submit or woken thread tries again
            with self._lock:
                self._threads -= 1
                self._waking = False
            raise

    def _work(self) -> None:
        idle = _Idle()
        hand_over, woken = _nothing, True
        while True:
            if self._threads - len(self._idle) > 1:  # others busy (read without the lock: a hint)
                hand_over()
                job, wake = self._next(idle, woken)
            else:
                job, wake = self._next(idle, woken)
                hand_over()
            if wake is not _nothing:
                with contextlib.suppress(RuntimeError):  # "can't start new thread": the rest wait for us
                    wake()
            if job is None:
                return
            if job is _REST:
                idle.wake.acquire()
                hand_over, woken = _nothing, True
            else:
                hand_over, woken = job(), False

    def _next(self, idle: _Idle, woken: bool) -> tuple[Job | None, Callable[[], None]]:
        """The oldest waiting job (and whom to wake for the rest, if this thread was woken for it);
        else ``_REST`` with ``idle`` on the idle stack; None once shut down."""
        with self._lock:
            if woken:
                self._waking = False
            if self._backlog:
                job = self._backlog.popleft()
                return job, self._wake() if woken and self._backlog else _nothing
            if self._closed:
                self._threads -= 1
                return None, _nothing
            self._idle.append(idle)
            return _REST, _nothing


def _nothing() -> None:
    """No hand-over, no thread to wake."""


def _rest() -> Callable[[], None]:
    """Not a job: the thread sleeps until it is woken."""
    return _nothing


_REST: Job = _rest


class ThreadTicket:
    """One thread that runs a step with a deadline, as the ledger sees it."""

    __slots__ = ("abandoned", "ended")

    def __init__(self) -> None:
        self.ended = False
        self.abandoned = False


class Capacity:
    """Executions running plus threads abandoned never exceed ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._abandoned = 0
        self._closed = False

    @property
    def abandoned(self) -> int:
        """Threads left running user code past a time limit (or past shutdown)."""
        return self._abandoned

    @property
    def running(self) -> int:
        """Executions started and not yet answered."""
        return self._running

    def admit(self) -> None:
        """Take one place for an execution; :meth:`release` gives it back.

        Raises:
            WorkerSaturated: no place is free, or the capacity is closed (shutdown).
        """
        with self._lock:
            if self._closed or self._running + self._abandoned >= self._limit:
                self._check()
            self._running += 1

    def release(self) -> None:
        """Give back the place an execution took with :meth:`admit`."""
        with self._lock:
            self._running -= 1
            if self._closed and not self._running:  # only a drain waits for that
                self._idle.notify_all()

    def check(self) -> None:
        """Raise :class:`WorkerSaturated` if an execution would be refused now."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        if self._closed:
            msg = "worker shutting down: not starting new executions"
            raise WorkerSaturated(msg)
        if self._running + self._abandoned >= self._limit:
            msg = (
                f"worker saturated: {self._running} execution(s) running and {self._abandoned} "
                f"thread(s) abandoned past their time limit fill max_workers={self._limit}"
            )
            raise WorkerSaturated(msg)

    def close(self) -> None:
        """Refuse every execution from now on."""
        with self._lock:
            self._closed = True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for no execution to be running; True if none is."""
        with self._lock:
            return self._idle.wait_for(lambda: self._running == 0, max(0.0, timeout_s))

    def thread_started(self) -> ThreadTicket:
        """A ticket for a new thread running a step with a deadline."""
        return ThreadTicket()

    def thread_ended(self, ticket: ThreadTicket) -> None:
        """The thread of ``ticket`` is done; its place is free again if it was abandoned."""
        with self._lock:
            ticket.ended = True
            if ticket.abandoned:
                self._abandoned -= 1

    def abandon(self, ticket: ThreadTicket) -> None:
        """Nobody waits for the thread of ``ticket`` any more: it holds a place until it ends."""
        with self._lock:
            if not ticket.ended and not ticket.abandoned:
                ticket.abandoned = True
                self._abandoned += 1


def observe_abandoned_threads(meter_provider: MeterProvider | None, capacity: Capacity) -> None:
    """Report ``capacity.abandoned`` as the gauge ``flash.threads.abandoned``.

    On ``meter_provider`` (the executor's own, when it exports metrics), else on the OTel
    global one (``otel-flash serve`` and the RunPod worker install theirs there).
    """
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(capacity.abandoned)]

    provider.get_meter("otel_flash").create_observable_gauge(
        THREADS_ABANDONED_METRIC,
        callbacks=[observe],
        unit="{thread}",
        description="Threads still running user code past its time limit; they count against max_workers.",
    )
