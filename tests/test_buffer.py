"""BoundedLines keeps whole logs that fit, and head plus tail of those that do not."""

from __future__ import annotations

from otel_flash.capture.buffer import BoundedLines


def _fill(buffer: BoundedLines, count: int, size: int = 10) -> None:
    for i in range(count):
        buffer.append(f"l{i}", size)


def test_log_within_bounds_is_kept_whole() -> None:
    """Exactly max_lines lines: nothing omitted."""
    buffer = BoundedLines(max_lines=10, max_bytes=10_000)
    _fill(buffer, 10)
    assert buffer.head() + buffer.tail() == [f"l{i}" for i in range(10)]
    assert (buffer.omitted_lines, buffer.omitted_bytes) == (0, 0)


def test_line_bound_keeps_head_and_tail() -> None:
    """Beyond max_lines the first half and the last lines survive; counts are exact."""
    buffer = BoundedLines(max_lines=6, max_bytes=10_000)
    _fill(buffer, 20)
    assert buffer.head() == ["l0", "l1", "l2"]
    assert buffer.tail() == ["l17", "l18", "l19"]
    assert (buffer.omitted_lines, buffer.omitted_bytes) == (14, 140)


def test_byte_bound_applies_first_when_lines_are_big() -> None:
    """Whichever bound is hit first wins: here bytes."""
    buffer = BoundedLines(max_lines=1000, max_bytes=100)
    _fill(buffer, 30, size=20)
    assert buffer.head() == ["l0", "l1"]
    assert buffer.tail() == ["l27", "l28", "l29"]
    assert (buffer.omitted_lines, buffer.omitted_bytes) == (25, 500)
