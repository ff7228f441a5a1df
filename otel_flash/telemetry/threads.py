"""Carry the OpenTelemetry context (and with it the execution's log) into user threads."""

from __future__ import annotations

import threading

from opentelemetry.instrumentation.threading import ThreadingInstrumentor

_lock = threading.Lock()
_holders = 0
_we_instrumented = False


def acquire() -> None:
    """Instrument ``threading`` and ``ThreadPoolExecutor`` unless someone already did."""
    global _holders, _we_instrumented
    with _lock:
        _holders += 1
        instrumentor = ThreadingInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
            _we_instrumented = True


def release() -> None:
    """Undo :func:`acquire`; the last holder removes the instrumentation it added."""
    global _holders, _we_instrumented
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders == 0 and _we_instrumented:
            ThreadingInstrumentor().uninstrument()
            _we_instrumented = False
