"""A function's ``sys.stdout``/``sys.stderr`` offer the attributes of a text stream, in both modes."""

from __future__ import annotations

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

PROBE = """
import sys

def probe(name):
    stream = getattr(sys, name)
    stream.reconfigure(line_buffering=stream.line_buffering)
    return {
        "encoding": stream.encoding,
        "errors": stream.errors,
        "name": stream.name,
        "mode": stream.mode,
        "line_buffering": stream.line_buffering,
        "isatty": stream.isatty(),
        "fileno": stream.fileno(),
        "buffer": [stream.buffer.writable(), stream.buffer.fileno() == stream.fileno()],
    }
"""


@pytest.fixture(params=["thread", "process"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    """Both modes must offer the same stream attributes."""
    mode: Isolation = request.param
    return mode


@pytest.mark.parametrize("name", ["stdout", "stderr"])
def test_streams_offer_the_attributes_of_a_text_stream(executor: RemoteExecutor, name: str) -> None:
    """encoding, errors, name, mode, line_buffering, isatty, fileno, buffer and reconfigure all answer."""
    request = {**function_request(PROBE, "probe", name), "serialization_format": "json"}
    response = executor.execute_sync(request)
    assert response.success, response.error
    facts = response.json_result
    assert isinstance(facts, dict)
    assert facts["encoding"].lower().replace("-", "") == "utf8"
    assert isinstance(facts["errors"], str) and isinstance(facts["name"], str)
    assert "w" in facts["mode"] or "+" in facts["mode"]
    assert isinstance(facts["line_buffering"], bool)
    assert facts["isatty"] is False
    assert isinstance(facts["fileno"], int)
    assert facts["buffer"] == [True, True]


def test_bytes_written_to_the_buffer_are_captured_in_a_child(telemetry: TelemetryCapture) -> None:
    """In a function process, sys.stdout.buffer writes become lines, in order with print, split UTF-8 kept."""
    code = """
import sys

def f():
    print("text first")
    sys.stdout.buffer.write("bytes é".encode()[:-1])
    sys.stdout.buffer.write("é then\\n".encode()[1:])
    sys.stdout.buffer.write(b"undecodable \\xff\\n")
    print("text last")
"""
    with RemoteExecutor(  # in-process, .buffer is the host stream's own
        FlashConfig(isolation="process"),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    ) as executor:
        response = executor.execute_sync(function_request(code, "f"))
    assert response.success, response.error
    assert stdout_lines(response.stdout) == ["text first", "bytes é then", "undecodable \ufffd", "text last"]
