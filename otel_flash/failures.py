"""How a failure is told: the ``error`` text of a response and the span's exception event.

Both show the user's frames only: a traceback starts at the first frame of submitted
code, so the worker's own frames (``executor.py``, ``calls.py``, ...) never reach a
response or an exported ``exception.stacktrace``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_flash.exceptions import FlashError, RemoteError
from otel_flash.loader import is_user_filename

Redact = Callable[[str], str]
_TRACEBACK_HEAD = "Traceback (most recent call last):\n"


def describe_error(exc: BaseException) -> str:
    """Our own errors by their message; the user's with the traceback of their own code."""
    if isinstance(exc, RemoteError):  # described where it was raised, in the function's process
        return exc.description
    if isinstance(exc, FlashError) and not _has_user_frames(exc.__cause__):
        return _safe_str(exc)
    stack = user_stacktrace(exc)
    if not stack.startswith(_TRACEBACK_HEAD):  # raised before the submitted code ran (a bad signature)
        return stack.rstrip()
    return f"{type(exc).__name__}: {_safe_str(exc)}\n\n{stack.rstrip()}"


def user_stacktrace(exc: BaseException) -> str:
    """``exc``'s traceback from the first frame of submitted code on, without the worker's frames.

    The exception line alone when no submitted code was on the stack; for a
    :class:`RemoteError`, the traceback the function's process described.
    """
    if isinstance(exc, RemoteError):
        return _remote_stacktrace(exc)
    tb = exc.__traceback__
    while tb is not None and not is_user_filename(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:
        return "".join(traceback.format_exception_only(type(exc), exc))
    return "".join(traceback.format_exception(type(exc), exc, tb))


def record_failure(span: trace.Span, exc: BaseException, redact: Redact, *, event: bool = True) -> None:
    """ERROR status on ``span`` and (unless ``event`` is False) an ``exception`` event, redacted."""
    message = redact(_safe_str(exc))
    if event:
        stack = user_stacktrace(exc)
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


def _remote_stacktrace(exc: RemoteError) -> str:
    """The traceback part of a description :func:`describe_error` made in the function's process."""
    head = f"{type(exc).__name__}: {_safe_str(exc)}\n\n"
    _, found, stack = exc.description.partition(head)
    if found and stack.startswith(_TRACEBACK_HEAD):
        return stack + "\n"  # as traceback formats it: the description was stripped
    return f"{type(exc).__name__}: {exc.description}"


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
