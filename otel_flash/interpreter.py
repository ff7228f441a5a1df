"""Interpreter-wide state that user code can change in thread mode, put back after each execution.

:class:`InterpreterState` undoes what one execution did to the log record factory,
the ``logging.disable`` level, the ``disabled`` flags of loggers that existed before
it, and ``builtins.print``, so the next request starts clean. (The root logger is the
bridge's to restore, the process streams stdio's.) :func:`guard_interrupt_main` keeps
``_thread.interrupt_main()`` called from an execution from stopping the worker.
"""

from __future__ import annotations

import _thread
import builtins
import contextlib
import logging
import operator
import signal
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

_log = logging.getLogger("flash.executor")
InExecution = Callable[[], bool]


class Snapshot(NamedTuple):
    """What an execution may change, as it was when the execution started.

    A named tuple, not a dataclass: one is made per execution, and this is cheaper.
    """

    record_factory: Callable[..., logging.LogRecord]
    disable_level: int
    print_function: Callable[..., None]
    loggers: int  # loggers existing then: the first ones of the manager's (insertion-ordered) dict


class InterpreterState:
    """Snapshots interpreter-wide state before executions and restores it after them.

    Reading every logger's ``disabled`` flag costs a pass over the loggers, so it is done
    once per execution, at its end, against the flags as the previous execution (or the
    executor's creation) left them; and only by count unless that count changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._disabled = _disabled_loggers()
        self._loggers: tuple[int, list[logging.Logger]] = (-1, [])

    def snapshot(self) -> Snapshot:
        """The state now, before an execution."""
        return Snapshot(
            logging.getLogRecordFactory(),
            logging.root.manager.disable,
            builtins.print,
            len(logging.root.manager.loggerDict),
        )

    def restore(self, before: Snapshot) -> list[str]:
        """Undo what the execution changed since ``before``; a sentence per thing restored."""
        restored: list[str] = []
        if logging.getLogRecordFactory() is not before.record_factory:
            logging.setLogRecordFactory(before.record_factory)
            restored.append("user code replaced the log record factory; otel_flash restored it")
        if logging.root.manager.disable != before.disable_level:
            logging.disable(before.disable_level)
            restored.append("user code called logging.disable; otel_flash restored the level")
        if builtins.print is not before.print_function:
            builtins.print = before.print_function
            restored.append("user code replaced builtins.print; otel_flash restored it")
        names = self._reenable(before.loggers) if self._count_disabled() != len(self._disabled) else []
        if names:
            restored.append(f"user code disabled the loggers {', '.join(names)}; otel_flash re-enabled them")
        return restored

    def _count_disabled(self) -> int:
        """How many loggers are disabled now: the cheap check made after every execution.

        The loggers (not placeholders) are listed again only when the manager holds more
        names than last time; counting their flags is then one pass in C.
        """
        names = len(logging.root.manager.loggerDict)
        known, loggers = self._loggers
        if names != known:
            values = list(logging.root.manager.loggerDict.values())
            loggers = [logger for logger in values if isinstance(logger, logging.Logger)]
            self._loggers = (names, loggers)
        return sum(map(_is_disabled, loggers))

    def _reenable(self, existing: int) -> list[str]:
        """Re-enable loggers among the first ``existing`` that were enabled before; their names."""
        names: list[str] = []
        disabled: set[str] = set()
        with self._lock:
            for index, (name, logger) in enumerate(logging.root.manager.loggerDict.items()):
                if not isinstance(logger, logging.Logger) or not logger.disabled:
                    continue
                if index < existing and name not in self._disabled:
                    logger.disabled = False
                    names.append(name)
                else:
                    disabled.add(name)
            self._disabled = frozenset(disabled)
        return names


_is_disabled = operator.attrgetter("disabled")


def _disabled_loggers() -> frozenset[str]:
    """The names of the loggers disabled now."""
    return frozenset(
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.disabled
    )


_guard_lock = threading.Lock()
_guards: list[InExecution] = []
_original_interrupt_main: Callable[..., None] | None = None


def guard_interrupt_main(in_execution: InExecution) -> None:
    """Make ``_thread.interrupt_main`` a no-op (with a warning) while ``in_execution()`` is true."""
    global _original_interrupt_main
    with _guard_lock:
        if not _guards:
            _original_interrupt_main = _thread.interrupt_main
            _thread.interrupt_main = _interrupt_main
        _guards.append(in_execution)


def unguard_interrupt_main(in_execution: InExecution) -> None:
    """Undo :func:`guard_interrupt_main`; the last one puts the original back (unless replaced since)."""
    global _original_interrupt_main
    with _guard_lock:
        if in_execution in _guards:
            _guards.remove(in_execution)
        if not _guards and _original_interrupt_main is not None:
            if _thread.interrupt_main is _interrupt_main:
                _thread.interrupt_main = _original_interrupt_main
            _original_interrupt_main = None


def _interrupt_main(signum: int = signal.SIGINT, /) -> None:
    """Stands in for ``_thread.interrupt_main``: ignored when called from an execution."""
    if any(in_execution() for in_execution in list(_guards)):
        # a broken logging setup must not turn this into an interrupt after all
        with contextlib.suppress(Exception):
            _log.warning("user code called _thread.interrupt_main(); otel_flash kept the worker running")
        return
    original: Any = _original_interrupt_main
    if original is not None:
        original(signum)
