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
import contextvars
import threading
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_flash.exceptions import WorkerSaturated
from otel_flash.semconv import THREADS_ABANDONED_METRIC

# A job does its work and returns how to hand its result over, which the thread calls last.
Job = Callable[[], Callable[[], None]]


class _Idle:
    """An idle thread's mailbox: the job it is given, and the lock it sleeps on until then."""

    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.job: Job | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class WorkerPool:
    """At most ``size`` daemon threads running submitted jobs; a job must not raise.

    A job goes to the thread that went idle last (its caches are the warmest, and a load
    that needs few threads keeps the others asleep), else to a new thread while under
    ``size``, else to a backlog that each thread empties before it goes idle. So every
    job starts at once while fewer than ``size`` run (a job that blocks never holds up
    another), and a thread that finishes takes the next waiting job without sleeping.

    A job returns its hand-over (waking whoever waits for it), called after the thread
    has put itself on the idle stack and before it sleeps: the woken thread then finds
    the GIL free instead of waking a second time for it.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Idle] = []
        self._backlog: collections.deque[Job] = collections.deque()
        self._threads = 0
        self._started = 0
        self._closed = False

    def submit(self, job: Job) -> None:
        """Run ``job`` in the last idle thread, a new one while under ``size``, else when one frees up."""
        with self._lock:
            if self._idle:
                idle = self._idle.pop()
            elif self._threads < self._size:
                self._threads += 1
                self._started += 1
                idle, name = None, f"{self._name}-{self._started}"
            else:
                self._backlog.append(job)
                return
        if idle is not None:
            idle.job = job
            idle.wake.release()
            return
        thread = threading.Thread(target=self._work, args=(job,), name=name, daemon=True)
        # Started in an empty context: a thread instrumented to inherit the context it was
        # started in would otherwise hold the first execution's context for its whole life.
        contextvars.Context().run(thread.start)

    def shutdown(self) -> None:
        """Let every thread end once the jobs submitted before now are done."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._threads -= len(idle)
        for each in idle:
            each.wake.release()  # with no job: the thread ends

    def _work(self, job: Job | None) -> None:
        mailbox = _Idle()
        while job is not None:
            hand_over = job()
            job, resting = self._next(mailbox)
            hand_over()
            if resting:
                mailbox.wake.acquire()
                job, mailbox.job = mailbox.job, None

    def _next(self, mailbox: _Idle) -> tuple[Job | None, bool]:
        """The oldest waiting job; else ``mailbox`` goes on the idle stack (True) unless shut down."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft(), False
            if self._closed:
                self._threads -= 1
                return None, False
            self._idle.append(mailbox)
            return None, True


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
