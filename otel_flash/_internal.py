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
