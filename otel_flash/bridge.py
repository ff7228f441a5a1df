"""The OpenTelemetry logging bridge on the root logger, installed and removed by an executor."""

from __future__ import annotations

import logging

from opentelemetry._logs import Logger
from opentelemetry.instrumentation.logging.handler import _RESERVED_ATTRS, LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.util.types import AnyValue


class FlashLoggingHandler(LoggingHandler):
    """The OTel bridge handler, with its OTel logger looked up once per logger name.

    The stock handler asks the provider for a logger on every record (a lock and a
    weak-set insert each time) and walks every attribute of every record; this one
    skips the walk when a record carries nothing beyond the standard attributes.
    Everything else, the recursion guard included, is the stock behaviour.
    """

    def __init__(self, level: int, logger_provider: LoggerProvider, log_code_attributes: bool) -> None:
        super().__init__(level, logger_provider, log_code_attributes)
        self._provider = logger_provider
        self._loggers: dict[str, Logger] = {}

    def _get_attributes(self, record: logging.LogRecord) -> tuple[dict[str, AnyValue], str | None]:
        plain = not record.exc_info and not self._log_code_attributes
        if plain and record.__dict__.keys() <= _RESERVED_ATTRS:
            return {}, None
        return super()._get_attributes(record)

    def emit(self, record: logging.LogRecord) -> None:
        """Translate ``record`` and emit it through the OTel logger named after its logger."""
        if self._is_emitting.get():
            return  # a record logged while translating one: dropping it is what avoids the loop
        token = self._is_emitting.set(True)
        try:
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers.setdefault(record.name, self._provider.get_logger(record.name))
            logger.emit(self._translate(record))
        finally:
            self._is_emitting.reset(token)


class LogBridge:
    """Puts a :class:`LoggingHandler` for ``logger_provider`` on the root logger.

    The root logger's level is lowered to ``level`` when it is higher, so that the
    user's INFO lines reach the bridge; :meth:`uninstall` puts the level back.
    At DEBUG the handler also records ``code.*`` attributes (file and line).
    """

    def __init__(self, logger_provider: LoggerProvider, level: int) -> None:
        self.handler = FlashLoggingHandler(
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
