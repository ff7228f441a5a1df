"""Pure functions that turn log records and execution facts into stdout lines.

Formats (exact, tests compare them):
    production: ``2026-11-28T11:15:25.123Z | INFO | message``
    debug:      ``2026-11-28T11:15:25.123Z | INFO | logger.name | file.py:12 | message``
    print/stderr lines: verbatim
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from opentelemetry.sdk._logs import ReadWriteLogRecord

IOSTREAM_ATTRIBUTE = "log.iostream"
_STACKTRACE = "exception.stacktrace"
_FILE = "code.file.path"
_LINE = "code.line.number"

_second_cache: tuple[int, str] = (-1, "")


def format_timestamp(ns: int) -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2026-11-28T11:15:25.123Z``."""
    global _second_cache  # a one-entry cache; a stale read only costs a strftime
    seconds, rest = divmod(ns, 1_000_000_000)
    cached_second, prefix = _second_cache
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache = (seconds, prefix)
    return f"{prefix}.{rest // 1_000_000:03d}Z"


def utf8_size(text: str) -> int:
    """Bytes ``text`` takes in UTF-8 (lone surrogates count as replaced)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "replace"))


class LineRenderer:
    """Renders one SDK log record as one stdout entry (a traceback stays with its record)."""

    __slots__ = ("_debug",)

    def __init__(self, debug: bool) -> None:
        self._debug = debug

    def __call__(self, rw: ReadWriteLogRecord) -> str:
        record = rw.log_record
        attributes: Mapping[str, object] | None = record.attributes
        body = record.body
        text = body if type(body) is str else str(body)
        if attributes:  # most records have none: skip every lookup
            if IOSTREAM_ATTRIBUTE in attributes:
                return text
            stack = attributes.get(_STACKTRACE)
            if isinstance(stack, str) and stack:
                text = f"{text}\n{stack.rstrip()}"
        stamp = format_timestamp(record.timestamp or record.observed_timestamp or time.time_ns())
        level = record.severity_text or "INFO"
        if not self._debug:
            return f"{stamp} | {level} | {text}"
        scope = rw.instrumentation_scope.name if rw.instrumentation_scope else "?"
        path = attributes.get(_FILE) if attributes else None
        line = attributes.get(_LINE) if attributes else None
        where = f"{os.path.basename(path)}:{line}" if isinstance(path, str) else "?"
        return f"{stamp} | {level} | {scope} | {where} | {text}"


def is_stream_record(rw: ReadWriteLogRecord) -> bool:
    """True for records of captured ``print``/``stderr`` output."""
    attributes = rw.log_record.attributes
    return bool(attributes) and IOSTREAM_ATTRIBUTE in attributes  # type: ignore[operator]  # non-empty


def truncate(line: str, max_bytes: int) -> tuple[str, int]:
    """``line`` cut to at most ``max_bytes`` UTF-8 bytes, and how many bytes were cut."""
    if len(line) <= max_bytes // 4 or (len(line) <= max_bytes and line.isascii()):
        return line, 0
    encoded = line.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return line, 0
    return encoded[:max_bytes].decode("utf-8", "ignore"), len(encoded) - max_bytes


def cut_line(line: str, max_bytes: int) -> tuple[str, int]:
    """Cut ``line`` to ``max_bytes`` with a marker; return it and how many bytes were cut."""
    kept, cut = truncate(line, max_bytes)
    return (mark_cut(kept, cut), cut) if cut else (line, 0)


def mark_cut(kept: str, cut: int) -> str:
    """``kept`` followed by the marker saying ``cut`` bytes of the line were dropped."""
    return f"{kept} [... line cut: {cut} bytes omitted]"


def omitted_marker(lines: int, size: int) -> str:
    """The line standing where lines were dropped."""
    return f"[... {lines} lines ({size} bytes) omitted ...]"


def report_line(
    trace_id: str,
    total_ms: float,
    phases_ms: Mapping[str, float],
    kept: int,
    omitted_lines: int,
    omitted_bytes: int,
    coldstart: bool = False,
) -> str:
    """The last stdout line: one summary of the execution, like Lambda's REPORT line.

    ``coldstart=true`` ends the line of a worker's first execution.
    """
    phases = "".join(f" {name}={ms:.2f}ms" for name, ms in phases_ms.items())
    return (
        f"REPORT trace_id={trace_id} duration={total_ms:.2f}ms{phases}"
        f" lines={kept} omitted_lines={omitted_lines} omitted_bytes={omitted_bytes}"
        + (" coldstart=true" if coldstart else "")
    )
