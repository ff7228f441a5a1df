"""How a function process ended, as the worker tells it: its error as an exception, its exit as text."""

from __future__ import annotations

import os
import signal

from otel_flash.exceptions import RemoteError

__all__ = ["describe_status", "remote_error"]

_REMOTE_TYPES: dict[str, type[RemoteError]] = {}
_REMOTE_TYPES_MAX = 256


def remote_error(type_name: str, message: str, description: str) -> RemoteError:
    """A :class:`RemoteError` whose class bears ``type_name``, so spans read as in-process."""
    name = type_name if type_name.isidentifier() else "RemoteError"
    cls = _REMOTE_TYPES.get(name)
    if cls is None:
        cls = type(name, (RemoteError,), {"__module__": "otel_flash.remote", "__qualname__": name})
        if len(_REMOTE_TYPES) < _REMOTE_TYPES_MAX:
            _REMOTE_TYPES[name] = cls
    return cls(message, description)


def describe_status(status: int | None, memory_limit_mb: int | None = None) -> str:
    """How a child ended, from its wait status, for the response's ``error``."""
    if status is None:
        return "the function's process stopped answering and its exit status is unknown"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        text = f"the function's process was killed by signal {name}"
        if memory_limit_mb and number in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
            text += f" (it ran under a memory limit of {memory_limit_mb} MB)"
        return text
    return f"the function's process exited with code {os.waitstatus_to_exitcode(status)} before answering"
