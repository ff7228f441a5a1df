"""Errors raised by otel_flash.

The tree::

    FlashError                  base of everything otel_flash raises
    ├── ConfigError             a FlashConfig value or OTEL_* variable is invalid
    ├── RequestError            a request is malformed (bad field, unknown type)
    ├── SerializationError      arguments or a result cannot be decoded or encoded
    ├── LoadError               the code cannot be compiled, or the named object is missing
    ├── DependencyError         a dependency is refused or its installation failed
    └── ExecutionTimeout        the user's code ran past its time limit

Inside an execution these never escape: the executor turns them into a
``FunctionResponse(success=False, error=...)``.
"""

from __future__ import annotations


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
