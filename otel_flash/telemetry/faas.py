"""The OpenTelemetry FaaS conventions on ``flash.execute``, and the worker's start-up span.

``faas.coldstart`` is true on a worker's first execution, ``faas.invocation_id``
names the job or request, ``faas.trigger`` says what started it (``pubsub`` for a
queued RunPod job, ``http`` for the HTTP worker, ``other`` for a library call).
:func:`worker_init` is the ``flash.worker.init`` span a worker entry point wraps its
start-up in (providers, the zygote of process isolation, warm imports).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from opentelemetry import trace
from opentelemetry.context import Context

from otel_flash.semconv import FAAS_COLDSTART, FAAS_INVOCATION_ID, FAAS_TRIGGER, WORKER_INIT_SPAN

__all__ = [
    "FAAS_COLDSTART",
    "FAAS_INVOCATION_ID",
    "FAAS_TRIGGER",
    "WORKER_INIT_SPAN",
    "ColdStart",
    "Trigger",
    "invocation_attributes",
    "worker_init",
]

Trigger = Literal["datasource", "http", "pubsub", "timer", "other"]


def invocation_attributes(trigger: Trigger, invocation_id: str | None = None) -> dict[str, str]:
    """The ``faas.*`` attributes an entry point passes to ``execute(attributes=...)``."""
    attributes = {FAAS_TRIGGER: str(trigger)}
    if invocation_id:
        attributes[FAAS_INVOCATION_ID] = invocation_id
    return attributes


class ColdStart:
    """Answers True exactly once: for the first execution that asks."""

    __slots__ = ("_lock", "_warm")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm = False

    def take(self) -> bool:
        """True for the first caller, False for every later one."""
        if self._warm:  # the common case, without the lock
            return False
        with self._lock:
            cold, self._warm = not self._warm, True
        return cold


@contextmanager
def worker_init(tracer_provider: trace.TracerProvider, start_time: int | None = None) -> Iterator[trace.Span]:
    """A ``flash.worker.init`` span (a trace of its own) around a worker's start-up.

    Args:
        tracer_provider: the worker's provider (the one its executor exports with).
        start_time: when start-up began (``time.time_ns()``), if before the provider existed.
    """
    tracer = tracer_provider.get_tracer("otel_flash")
    with tracer.start_as_current_span(WORKER_INIT_SPAN, Context(), start_time=start_time) as span:
        yield span
