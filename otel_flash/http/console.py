"""The worker's own ``flash.*`` log lines on the real stderr (``otel-flash serve``), outside executions."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

__all__ = ["ConsoleHandler"]


class ConsoleHandler(logging.Handler):
    """Prints the worker's own ``flash.*`` lines on the real stderr, outside executions only.

    Lines logged inside an execution are already in its response and exported
    with it; printing them here too would show them twice in the worker's log.

    Args:
        level: the lowest level printed (``"INFO"``...).
        in_execution: True while the calling thread runs an execution.
    """

    def __init__(self, level: str, in_execution: Callable[[], bool]) -> None:
        super().__init__(logging.getLevelNamesMapping()[level])
        self._in_execution = in_execution
        self._stream = sys.__stderr__
        self.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s"))
        logging.getLogger("flash").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self._stream is None or self._in_execution():
            return
        try:
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def remove(self) -> None:
        """Stop printing: the handler leaves the ``flash`` logger."""
        logging.getLogger("flash").removeHandler(self)
