"""The OpenTelemetry logging bridge on the root logger, installed and removed by an executor."""

from __future__ import annotations

import logging

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider


class LogBridge:
    """Puts a :class:`LoggingHandler` for ``logger_provider`` on the root logger.

    The root logger's level is lowered to ``level`` when it is higher, so that the
    user's INFO lines reach the bridge; :meth:`uninstall` puts the level back.
    At DEBUG the handler also records ``code.*`` attributes (file and line).
    """

    def __init__(self, logger_provider: LoggerProvider, level: int) -> None:
        self.handler = LoggingHandler(
            level=level,
            logger_provider=logger_provider,
            log_code_attributes=level <= logging.DEBUG,
        )
        root = logging.getLogger()
        self._previous_level = root.level
        if root.level == logging.NOTSET or root.level > level:
            root.setLevel(level)
        root.addHandler(self.handler)

    def ensure_installed(self) -> None:
        """Put the handler back if user code removed it from the root logger."""
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)

    def uninstall(self) -> None:
        """Remove the handler and restore the root logger's level."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._previous_level)
