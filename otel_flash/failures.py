"""How a failure is told: the ``error`` text of a response and the span's exception event."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_flash.exceptions import FlashError, RemoteError
from otel_flash.loader import is_user_filename

Redact = Callable[[str], str]


def describe_error(exc: BaseException) -> str:
    """Our own errors by their message; the user's with the traceback of their own code."""
    if isinstance(exc, RemoteError):  # described where it was raised, in the function's process
        return exc.description
    if isinstance(exc, FlashError) and not _has_user_frames(exc.__cause__):
        return _safe_str(exc)
    tb = exc.__traceback__
    while tb is not None and not is_user_filename(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:  # raised before the submitted code ran (a bad call signature, say)
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    lines = traceback.format_exception(type(exc), exc, tb)
    return f"{type(exc).__name__}: {_safe_str(exc)}\n\n{''.join(lines).rstrip()}"


def record_failure(span: trace.Span, exc: BaseException, redact: Redact, *, event: bool = True) -> None:
    """ERROR status on ``span`` and (unless ``event`` is False) an ``exception`` event, redacted."""
    message = redact(_safe_str(exc))
    if event:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        span.add_event(
            "exception",
            {
                "exception.type": type(exc).__qualname__,
                "exception.message": message,
                "exception.stacktrace": redact(stack),
                "exception.escaped": True,
            },
        )
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"[:1024]))


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a user exception whose __str__ raises
        return f"<{type(exc).__name__} whose str() failed>"


def _has_user_frames(exc: BaseException | None) -> bool:
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        if is_user_filename(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False
