"""The library's own error channel: ``flash.internal``, written to the real stderr.

It never propagates to the root logger, so a report about the telemetry
pipeline can never re-enter the logging bridge and loop.
"""

from __future__ import annotations

import logging
import sys
import threading

_NAME = "flash.internal"
_setup_lock = threading.Lock()


def internal_logger() -> logging.Logger:
    """The ``flash.internal`` logger, given its stderr handler on first use (not at import)."""
    logger = logging.getLogger(_NAME)
    if logger.propagate:
        with _setup_lock:
            if logger.propagate:
                handler = logging.StreamHandler(sys.__stderr__)
                handler.setFormatter(logging.Formatter("otel_flash internal %(levelname)s: %(message)s"))
                logger.addHandler(handler)
                logger.propagate = False
    return logger


class SdkDiagnostics(logging.Filter):
    """Keeps the OTel SDK's own log records (``opentelemetry.*``) out of the logging bridge.

    Put on the bridge's handler: a warning such as the batch processors' "queue full"
    or an exporter's "failed to export" would otherwise become an OTel record in the
    very pipeline it reports on, or be dropped by the bridge's recursion guard. Those
    at WARNING or above are written to the worker's stderr through ``flash.internal``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for ``opentelemetry.*`` records, after reporting them on stderr."""
        name = record.name
        if not name.startswith("opentelemetry") or (name != "opentelemetry" and name[13] != "."):
            return True
        if record.levelno >= logging.WARNING:
            internal_logger().handle(record)
        return False
