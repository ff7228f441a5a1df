"""Exported stack traces show the user's frames only, as the response's ``error`` does, in both modes."""

from __future__ import annotations

import pytest

from otel_flash import RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

FAILS_IN_CALL = """
def inner():
    raise ValueError("boom")

def outer():
    inner()
"""
FAILS_IN_LOAD = """
def inner():
    raise KeyError("at import")

inner()

def outer():
    return 1
"""
WORKER_FILES = ("executor.py", "calls.py", "isolation.py", "targets.py", "loader.py", "otel_flash")


@pytest.fixture(params=["thread", "process"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    """Every test here runs in both isolation modes."""
    mode: Isolation = request.param
    return mode


def _exception_event(telemetry: TelemetryCapture, span_name: str) -> dict[str, object]:
    [event] = telemetry.span(span_name).events
    assert event.name == "exception"
    return dict(event.attributes or {})


@pytest.mark.parametrize(
    ("code", "phase", "kind", "frames"),
    [
        (FAILS_IN_CALL, "flash.function.call", "ValueError", ("in outer", "in inner")),
        (FAILS_IN_LOAD, "flash.function.load", "KeyError", ("in <module>", "in inner")),
    ],
)
def test_exception_stacktrace_shows_only_the_users_frames(
    executor: RemoteExecutor,
    telemetry: TelemetryCapture,
    code: str,
    phase: str,
    kind: str,
    frames: tuple[str, ...],
) -> None:
    """The phase span's ``exception.stacktrace`` is the response error's traceback: user frames only."""
    response = executor.execute_sync(function_request(code, "outer"))
    assert not response.success
    stack = str(_exception_event(telemetry, phase)["exception.stacktrace"])
    assert stack.startswith('Traceback (most recent call last):\n  File "<flash:outer:')
    assert [line.split(", ")[-1] for line in stack.splitlines() if line.startswith("  File ")] == list(frames)
    assert not any(name in stack for name in WORKER_FILES), stack
    assert stack.rstrip().endswith(kind + ": " + ("boom" if kind == "ValueError" else "'at import'"))
    assert (response.error or "").endswith("\n\n" + stack.rstrip())


def test_an_error_before_user_code_ran_exports_its_line_alone(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """A call the function's signature refuses reports the exception line, with no worker frames."""
    response = executor.execute_sync(function_request("def f():\n    return 1\n", "f", "unexpected"))
    assert not response.success
    stack = str(_exception_event(telemetry, "flash.function.call")["exception.stacktrace"])
    assert stack.startswith("TypeError: ") and "takes 0 positional arguments" in stack
    assert "Traceback" not in stack and not any(name in stack for name in WORKER_FILES)
