"""The OpenTelemetry logging bridge on the root logger, installed and removed by an executor."""

from __future__ import annotations

import logging
import time

from opentelemetry._logs import Logger
from opentelemetry.context import get_current
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.util.types import AnyValue

from otel_flash.capture.records import HandedLogRecord, emit_handed
from otel_flash.redaction import Redactor

# What every ``logging.LogRecord`` carries (and what formatting adds): a record with nothing
# else has no attributes for the bridge to translate.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "asctime",
    "message",
    "taskName",
}
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}  # the stock handler's OTel names of these levels


class FlashLoggingHandler(LoggingHandler):
    """The OTel bridge handler, with its OTel logger looked up once per logger name.

    The stock handler asks the provider for a logger on every record (a lock and a
    weak-set insert each time) and walks every attribute of every record; this one
    skips the walk when a record carries nothing beyond the standard attributes, and
    makes each record a :class:`~otel_flash.capture.records.HandedLogRecord` that it
    releases once emitted if an export queue kept it without a copy. Everything else,
    the translation and the recursion guard included, is the stock behaviour.
    """

    def __init__(
        self, level: int, logger_provider: LoggerProvider, log_code_attributes: bool, redact: Redactor
    ) -> None:
        super().__init__(level, logger_provider, log_code_attributes)
        self._redact = redact
        self._provider = logger_provider
        self._loggers: dict[str, Logger] = {}

    def _get_attributes(self, record: logging.LogRecord) -> tuple[dict[str, AnyValue], str | None]:
        plain = not record.exc_info and not self._log_code_attributes
        if plain and record.__dict__.keys() <= _STANDARD_ATTRIBUTES:
            return {}, None
        return super()._get_attributes(record)

    def _translate(self, record: logging.LogRecord) -> HandedLogRecord:
        """The stock handler's translation, redacted, as a record given up once emitted (see :meth:`emit`)."""
        body = self.format(record) if self.formatter else record.getMessage()
        attributes, event_name = self._get_attributes(record)
        if attributes:
            redact = self._redact.value
            attributes = {key: redact(value) for key, value in attributes.items()}  # type: ignore[misc]  # AnyValue in, AnyValue out
        return HandedLogRecord(
            timestamp=int(record.created * 1e9),
            observed_timestamp=time.time_ns(),
            context=get_current() or None,
            severity_text=_SEVERITY_TEXT.get(record.levelname, record.levelname),
            severity_number=std_to_otel(record.levelno),
            body=self._redact(body) if isinstance(body, str) else body,
            attributes=attributes,
            event_name=event_name,
        )

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit without the handler-wide lock.

        ``logging.Handler.handle`` serialises every thread through one lock; the OTel
        pipeline behind :meth:`emit` is thread-safe (the SDK's processors lock what
        they share, each execution's log has its own lock), so the lock only adds
        contention between concurrent executions.
        """
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        """Translate ``record`` and emit it through the OTel logger named after its logger."""
        if self._is_emitting.get():
            return  # a record logged while translating one: dropping it is what avoids the loop
        token = self._is_emitting.set(True)
        try:
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers.setdefault(record.name, self._provider.get_logger(record.name))
            emit_handed(logger, self._translate(record))
        finally:
            self._is_emitting.reset(token)


class LogBridge:
    """Puts a :class:`LoggingHandler` for ``logger_provider`` on the root logger.

    The root logger's level is lowered to ``level`` when it is higher, so that the
    user's INFO lines reach the bridge; :meth:`uninstall` puts the level back.
    At DEBUG the handler also records ``code.*`` attributes (file and line).
    """

    def __init__(self, logger_provider: LoggerProvider, level: int, redact: Redactor) -> None:
        self._level = level
        self.handler = FlashLoggingHandler(level, logger_provider, level <= logging.DEBUG, redact)
        root = logging.getLogger()
        self._previous_level = root.level
        if root.level == logging.NOTSET or root.level > level:
            root.setLevel(level)
        root.addHandler(self.handler)

    def ensure_installed(self) -> None:
        """Put the handler and the level back if user code removed or raised them."""
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        if root.level == logging.NOTSET or root.level > self._level:
            root.setLevel(self._level)

    def snapshot(self) -> tuple[tuple[logging.Handler, ...], int]:
        """The root logger's handlers and level now, for :meth:`restore`."""
        root = logging.getLogger()
        return tuple(root.handlers), root.level

    def restore(self, snapshot: tuple[tuple[logging.Handler, ...], int]) -> bool:
        """Undo what user code did to the root logger since ``snapshot``; True if it had to."""
        root = logging.getLogger()
        handlers, level = snapshot
        if tuple(root.handlers) == handlers and root.level == level:
            return False
        root.handlers[:] = handlers
        root.setLevel(level)
        self.ensure_installed()
        return True

    def uninstall(self) -> None:
        """Remove the handler and restore the root logger's level."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._previous_level)
