"""Interpreter-wide state that user code can change in thread mode, put back after each execution.

:class:`InterpreterState` undoes what one execution did to the log record factory,
the ``logging.disable`` level, the ``disabled`` flags of loggers that existed before
it, and ``builtins.print``, so the next request starts clean. (The root logger is the
bridge's to restore, the process streams stdio's.) :func:`install` also keeps
``_thread.interrupt_main()`` called from an execution from stopping the worker.
"""

from __future__ import annotations

import _thread
import builtins
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("flash.executor")
InExecution = Callable[[], bool]


# What an execution may change, as it was when it started: the log record factory, the
# ``logging.disable`` level, ``builtins.print``, how many loggers existed (the first ones of
# the manager's insertion-ordered dict) and the count of ``disabled`` flag changes. A plain
# tuple: one is made per execution, and it is the cheapest to make.
Snapshot = tuple[Callable[..., logging.LogRecord], int, Callable[..., None], int, int]


class InterpreterState:
    """Snapshots interpreter-wide state before executions and restores it after them.

    Loggers' ``disabled`` flags are not read per execution (a pass over every logger):
    while installed (:func:`install`), setting a logger's ``disabled`` counts a change,
    and only an execution during which the count moved looks at the loggers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = -1
        self._disabled: frozenset[str] = frozenset()

    def snapshot(self) -> Snapshot:
        """The state now, before an execution."""
        changes = _flag_changes
        if changes != self._seen:  # flags changed since last read (the host, a past execution)
            with self._lock:
                self._disabled, self._seen = _disabled_loggers(), changes
        manager = logging.root.manager
        factory = logging.getLogRecordFactory()
        return (factory, manager.disable, builtins.print, len(manager.loggerDict), changes)

    def restore(self, before: Snapshot) -> list[str]:
        """Undo what the execution changed since ``before``; a sentence per thing restored."""
        factory, level, printer, loggers, changes = before
        restored: list[str] = []
        if logging.getLogRecordFactory() is not factory:
            logging.setLogRecordFactory(factory)
            restored.append("user code replaced the log record factory; otel_flash restored it")
        if logging.root.manager.disable != level:
            logging.disable(level)
            restored.append("user code called logging.disable; otel_flash restored the level")
        if builtins.print is not printer:
            builtins.print = printer
            restored.append("user code replaced builtins.print; otel_flash restored it")
        if _flag_changes != changes:
            names = self._reenable(loggers)
            if names:
                restored.append(
                    f"user code disabled the loggers {', '.join(names)}; otel_flash re-enabled them"
                )
        return restored

    def _reenable(self, existing: int) -> list[str]:
        """Re-enable loggers among the first ``existing`` that were enabled before; their names."""
        names: list[str] = []
        with self._lock:
            for index, (name, logger) in enumerate(logging.root.manager.loggerDict.items()):
                if index >= existing:
                    break
                if isinstance(logger, logging.Logger) and logger.disabled and name not in self._disabled:
                    logger.disabled = False
                    names.append(name)
        return names


def _disabled_loggers() -> frozenset[str]:
    """The names of the loggers disabled now."""
    return frozenset(
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.disabled
    )


_install_lock = threading.Lock()
_holders: list[InExecution] = []
_original_interrupt_main: Callable[..., None] | None = None
_flag_changes = 0


def install(in_execution: InExecution) -> None:
    """Count changes of loggers' ``disabled`` flags, and make ``_thread.interrupt_main`` a no-op
    (with a warning) while ``in_execution()`` is true. The last :func:`uninstall` undoes it."""
    global _original_interrupt_main
    with _install_lock:
        if not _holders:
            _original_interrupt_main = _thread.interrupt_main
            _thread.interrupt_main = _interrupt_main
            # Writes to a logger's attributes are rare (configuration), reads are not: a
            # class-level __setattr__ costs nothing where logging is hot.
            logging.Logger.__setattr__ = _tracking_setattr  # type: ignore[method-assign,assignment]  # see above
        _holders.append(in_execution)


def uninstall(in_execution: InExecution) -> None:
    """Undo :func:`install`; the last one puts the originals back (unless replaced since)."""
    global _original_interrupt_main
    with _install_lock:
        if in_execution in _holders:
            _holders.remove(in_execution)
        if _holders or _original_interrupt_main is None:
            return
        if _thread.interrupt_main is _interrupt_main:
            _thread.interrupt_main = _original_interrupt_main
        _original_interrupt_main = None
        if logging.Logger.__dict__.get("__setattr__") is _tracking_setattr:
            delattr(logging.Logger, "__setattr__")


def _tracking_setattr(logger: logging.Logger, name: str, value: Any) -> None:
    """``Logger.__setattr__`` while installed: counts each change of a ``disabled`` flag."""
    global _flag_changes
    if name == "disabled" and logger.__dict__.get("disabled", value) != value:
        with _install_lock:
            _flag_changes += 1
    object.__setattr__(logger, name, value)


def _interrupt_main(signum: int = signal.SIGINT, /) -> None:
    """Stands in for ``_thread.interrupt_main``: ignored when called from an execution."""
    if any(in_execution() for in_execution in list(_holders)):
        # a broken logging setup must not turn this into an interrupt after all
        with contextlib.suppress(Exception):
            _log.warning("user code called _thread.interrupt_main(); otel_flash kept the worker running")
        return
    original: Any = _original_interrupt_main
    if original is not None:
        original(signum)
