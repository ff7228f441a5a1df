"""Echoed lines normalise like the stdout lines they stand for, by runpod-flash's own normaliser."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runpod_flash.core.resources.serverless import _normalize_stream_log_line

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.echo import LineEcho, container_form, resolve_auto
from tests.requests import HELLO, function_request

STAMP = "2026-11-28T11:15:25.123456789Z "
stamps = st.sampled_from(["", "2026-11-28T11:15:25.123Z | INFO | ", "2026-01-02T03:04:05+02:00  "])
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(stamps, texts)
def test_echoed_form_matches_with_or_without_the_log_views_timestamp(stamp: str, text: str) -> None:
    """Whether or not the container log prefixes a timestamp, the echoed line dedups against stdout."""
    for line in f"{stamp}{text}".splitlines() or [""]:
        form = container_form(line)
        if form is None:  # not echoed: it shows once, with the final stdout
            continue
        assert _normalize_stream_log_line(STAMP + form) == _normalize_stream_log_line(line)
        assert _normalize_stream_log_line(form) == _normalize_stream_log_line(line)


def test_a_record_with_a_traceback_is_echoed_line_by_line() -> None:
    """Each physical line of an entry is one container line; blank ones are skipped."""
    stream = io.StringIO()
    LineEcho(stream)("2026-11-28T11:15:25.123Z | ERROR | failed\nTraceback (most recent call last):\n\n  x")
    assert stream.getvalue() == "| ERROR | failed\nTraceback (most recent call last):\nx\n"


def test_auto_means_on_under_runpod_only() -> None:
    """FLASH_ECHO_LINES: auto resolves to on under the RunPod handlers and off elsewhere; on and off stay."""
    auto, on, off = (FlashConfig.from_env({"FLASH_ECHO_LINES": value}) for value in ("auto", "ON", "off"))
    resolved = [
        resolve_auto(auto, True),
        resolve_auto(auto, False),
        resolve_auto(on, False),
        resolve_auto(off, True),
    ]
    assert [config.echo_lines for config in resolved] == ["on", "off", "on", "off"]


def test_an_executor_set_on_echoes_every_line(capfd: pytest.CaptureFixture[str]) -> None:
    """With echo_lines on, any entry point's executor writes each line to the real stdout as emitted."""
    with RemoteExecutor(FlashConfig(echo_lines="on")) as executor:
        response = executor.execute_sync(function_request(HELLO, "hello", "echo"))
    assert response.success
    assert capfd.readouterr().out.splitlines()[-2:] == ["| INFO | greeting echo", "Hello, echo!"]
