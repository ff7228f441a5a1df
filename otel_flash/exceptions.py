"""Errors raised by otel_flash.

The tree::

    FlashError                  base of everything otel_flash raises
    ├── ConfigError             a FlashConfig value or OTEL_* variable is invalid
    ├── RequestError            a request is malformed (bad field, unknown type)
    ├── SerializationError      arguments or a result cannot be decoded or encoded
    ├── LoadError               the code cannot be compiled, or the named object is missing
    ├── DependencyError         a dependency is refused or its installation failed
    ├── ExecutionTimeout        the user's code ran past its time limit
    ├── IsolationError          the function's process died, was killed, or broke the wire protocol
    ├── RemoteError             the user's code raised in its process (named after the original type)
    ├── WorkerSaturated         an execution is refused before it starts: no capacity, or shutting down
    └── WorkerShuttingDown      an execution still running at shutdown is answered without its result

Inside an execution these never escape: the executor turns them into a
``FunctionResponse(success=False, error=...)``. ``WorkerSaturated`` is the one raised
by ``execute``/``execute_sync`` themselves, since it refuses an execution before it starts.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DependencyError",
    "ExecutionTimeout",
    "FlashError",
    "IsolationError",
    "LoadError",
    "RemoteError",
    "RequestError",
    "SerializationError",
    "WorkerSaturated",
    "WorkerShuttingDown",
]


class FlashError(Exception):
    """Base class of every error otel_flash raises."""


class ConfigError(FlashError):
    """A configuration value is invalid."""


class RequestError(FlashError):
    """A request is malformed; the message names the offending field."""


class SerializationError(FlashError):
    """Arguments cannot be decoded, or a result cannot be encoded."""


class LoadError(FlashError):
    """Code does not compile, or the function, class or method it names is missing."""


class DependencyError(FlashError):
    """A dependency is refused before installation, or its installer failed."""


class ExecutionTimeout(FlashError):
    """The user's code ran past its time limit (``timeout_s``)."""


class IsolationError(FlashError):
    """With ``isolation="process"``: the function's process died, was killed, or misbehaved."""


class RemoteError(FlashError):
    """An exception raised by the user's code in its own process.

    Its class is named after the original (``ValueError``, say) so that spans read the
    same as in-process; ``description`` is the response ``error`` text the process made.
    """

    def __init__(self, message: str, description: str) -> None:
        super().__init__(message)
        self.description = description


class WorkerSaturated(FlashError):
    """An execution is refused before it starts: executions running plus threads abandoned
    past their time limit fill ``max_workers``, or the worker is shutting down.

    The HTTP worker answers it 503, the RunPod handler with a ``success: false`` output.
    """


class WorkerShuttingDown(FlashError):
    """The worker stopped while the execution was still running; it is answered without its result."""
