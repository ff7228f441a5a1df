"""Fixtures shared by the suite: fresh in-memory telemetry, an executor, restored global state."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.testing import TelemetryCapture, capture_telemetry


@pytest.fixture(autouse=True)
def _restore_global_state() -> Iterator[None]:
    """Every test leaves the root logger and the process streams as it found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stdout, stderr = sys.stdout, sys.stderr
    yield
    sys.stdout, sys.stderr = stdout, stderr
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def telemetry() -> Iterator[TelemetryCapture]:
    """Fresh providers exporting into memory."""
    capture = capture_telemetry()
    yield capture
    capture.shutdown()


@pytest.fixture
def isolation() -> Isolation:
    """The isolation mode of the ``executor`` fixture; a module overrides it to run in both modes."""
    return "thread"


@pytest.fixture
def executor(telemetry: TelemetryCapture, isolation: Isolation) -> Iterator[RemoteExecutor]:
    """An executor with default settings (and ``isolation``) on the in-memory providers."""
    with RemoteExecutor(
        FlashConfig(isolation=isolation),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    ) as instance:
        yield instance


@pytest.fixture
def internal_reports() -> Iterator[list[str]]:
    """Messages written to the ``flash.internal`` logger (the worker's own stderr)."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("flash.internal")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
