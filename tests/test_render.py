"""Rendered lines are a contract: each format compared exactly."""

from __future__ import annotations

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_flash.render import LineRenderer, cut_line, format_timestamp, omitted_marker, report_line

NS = 1_795_000_000_123_456_789  # 2026-11-18T11:06:40.123Z


def _record(body: str, **attributes: str | int) -> ReadWriteLogRecord:
    record = LogRecord(
        timestamp=NS,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body=body,
        attributes=attributes,
    )
    return ReadWriteLogRecord(record, Resource.get_empty(), InstrumentationScope("user.module"))


def test_timestamp_is_utc_iso_with_milliseconds() -> None:
    """Timestamps render as UTC ISO 8601 with milliseconds and a Z."""
    assert format_timestamp(NS) == "2026-11-18T11:06:40.123Z"
    assert format_timestamp(NS + 1_000_000_000) == "2026-11-18T11:06:41.123Z"


def test_production_format() -> None:
    """timestamp | level | message."""
    assert (
        LineRenderer(debug=False)(_record("disk almost full"))
        == "2026-11-18T11:06:40.123Z | WARN | disk almost full"
    )


def test_debug_format() -> None:
    """timestamp | level | logger | file:line | message."""
    code: dict[str, str | int] = {"code.file.path": "/app/job.py", "code.line.number": 12}
    line = LineRenderer(debug=True)(_record("x=1", **code))
    assert line == "2026-11-18T11:06:40.123Z | WARN | user.module | job.py:12 | x=1"


def test_iostream_lines_are_verbatim() -> None:
    """print output is rendered exactly as written."""
    assert LineRenderer(debug=True)(_record("  50%|#####  | 5/10", **{"log.iostream": "stderr"})) == (
        "  50%|#####  | 5/10"
    )


def test_exception_stacktrace_follows_the_message() -> None:
    """A logged exception keeps its traceback with its record."""
    stack = "Traceback (most recent call last):\n  ...\nValueError: v\n"
    line = LineRenderer(debug=False)(_record("failed", **{"exception.stacktrace": stack}))
    assert line == f"2026-11-18T11:06:40.123Z | WARN | failed\n{stack.rstrip()}"


def test_cut_line_marks_what_it_cut() -> None:
    """A line over the bound is cut at the byte limit, with a marker counting the cut bytes."""
    assert cut_line("short", 10) == ("short", 0)
    assert cut_line("x" * 25, 10) == ("xxxxxxxxxx [... line cut: 15 bytes omitted]", 15)
    assert cut_line("é" * 10, 5) == ("éé [... line cut: 15 bytes omitted]", 15)


def test_marker_and_report_lines() -> None:
    """The omitted marker and the REPORT line read exactly so."""
    assert omitted_marker(3, 120) == "[... 3 lines (120 bytes) omitted ...]"
    assert report_line("ab" * 16, 1.234, {"function.call": 1.0}, 2, 3, 4) == (
        "REPORT trace_id=abababababababababababababababab duration=1.23ms function.call=1.00ms"
        " lines=2 omitted_lines=3 omitted_bytes=4"
    )


def test_report_line_of_a_cold_start() -> None:
    """A worker's first execution ends its REPORT line with coldstart=true; later ones say nothing."""
    assert report_line("cd" * 16, 2.5, {}, 1, 0, 0, coldstart=True) == (
        "REPORT trace_id=cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd duration=2.50ms lines=1 omitted_lines=0"
        " omitted_bytes=0 coldstart=true"
    )
