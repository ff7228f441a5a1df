"""Per-execution log capture: the ``LogRecordProcessor`` and the log it fills.

A record belongs to the execution whose :class:`ExecutionLog` is bound in the
OpenTelemetry context the record was emitted in, under this processor's own
context key. Correlation is by context, not by trace id: two executions that
continue the same caller trace still get separate logs, and records from
outside any execution (no log bound) are left to the exporters alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.context import Context, create_key, get_value, set_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from otel_flash._internal import internal_logger
from otel_flash.capture.buffer import BoundedLines
from otel_flash.capture.render import (
    cut_line,
    is_stream_record,
    mark_cut,
    omitted_marker,
    truncate,
    utf8_size,
)

LineSubscriber = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CapturedLog:
    """What one execution logged, as kept within the bounds."""

    head: tuple[str, ...]
    tail: tuple[str, ...]
    total_lines: int
    omitted_lines: int
    omitted_bytes: int

    @property
    def kept(self) -> int:
        """Number of lines kept."""
        return len(self.head) + len(self.tail)

    def lines(self) -> list[str]:
        """The kept lines, with one marker line where lines were dropped."""
        if not self.omitted_lines:
            return [*self.head, *self.tail]
        return [*self.head, omitted_marker(self.omitted_lines, self.omitted_bytes), *self.tail]


class ExecutionLog:
    """The bounded, thread-safe log of one execution, with live subscribers.

    Also assembles partial ``print`` output per stream into whole lines.
    """

    __slots__ = (
        "_captured",
        "_closed",
        "_cut_bytes",
        "_lines",
        "_lock",
        "_max_line_bytes",
        "_partial",
        "_subscribers",
        "_total",
    )

    def __init__(self, max_lines: int, max_bytes: int, max_line_bytes: int) -> None:
        self._lock = threading.Lock()
        self._lines = BoundedLines(max_lines, max_bytes)
        self._max_line_bytes = max(1, min(max_line_bytes, max_bytes // 2))
        self._subscribers: list[LineSubscriber] = []
        self._partial: dict[str, tuple[str, int]] = {}
        self._closed = False
        self._captured: CapturedLog | None = None
        self._total = 0
        self._cut_bytes = 0

    @property
    def closed(self) -> bool:
        """True once the execution has ended; later lines are not captured."""
        return self._closed

    def subscribe(self, subscriber: LineSubscriber) -> None:
        """Call ``subscriber`` with every line appended from now on, in order."""
        with self._lock:
            self._subscribers.append(subscriber)

    def append(self, line: str, *, bounded: bool = False) -> None:
        """Add one rendered line, cut if over the single-line bound (unless ``bounded`` already)."""
        cut = 0
        if not bounded and len(line) > self._max_line_bytes // 4:  # shorter lines always fit
            line, cut = cut_line(line, self._max_line_bytes)
        if line.isascii():
            size = len(line) + 1
        else:  # lone surrogates (undecodable bytes) become visible escapes: the response stays valid JSON
            encoded = line.encode("utf-8", "backslashreplace")
            line, size = encoded.decode("utf-8"), len(encoded) + 1
        with self._lock:
            if self._closed:
                return
            self._total += 1
            self._cut_bytes += cut
            self._lines.append(line, size)
            if self._subscribers:
                for subscriber in self._subscribers:
                    _notify(subscriber, line)

    def feed(self, stream: str, text: str) -> list[str]:
        """Add written ``text`` to ``stream``'s partial line; return the lines it completes.

        Lines come back already cut to the single-line bound (with a marker), and a
        partial line never holds more than that bound, however much is written.
        """
        limit = self._max_line_bytes
        with self._lock:
            pending, dropped = self._partial.get(stream, ("", 0))
            pieces = text.split("\n")
            pending += pieces[0]
            lines: list[str] = []
            if len(pieces) > 1:
                lines.append(self._finish_line(pending, dropped))
                lines.extend(self._finish_line(piece, 0) for piece in pieces[1:-1])
                pending, dropped = pieces[-1], 0
            if len(pending) > limit:  # keep one char more than fits, so the line is cut and marked
                dropped += utf8_size(pending[limit + 1 :])
                pending = pending[: limit + 1]
            self._partial[stream] = (pending, dropped)
            return lines

    def _finish_line(self, text: str, dropped: int) -> str:
        kept, cut = truncate(text, self._max_line_bytes)
        cut += dropped
        self._cut_bytes += cut
        return mark_cut(kept, cut) if cut else kept

    def drain(self) -> list[tuple[str, str]]:
        """Partial last lines per stream, so that none is lost at the end."""
        with self._lock:
            rest = [
                (stream, self._finish_line(text, dropped))
                for stream, (text, dropped) in self._partial.items()
                if text
            ]
            self._partial.clear()
            return rest

    def close(self) -> CapturedLog:
        """End capture and return what was kept (the same result on every call)."""
        with self._lock:
            if self._captured is None:
                self._closed = True
                self._subscribers.clear()
                lines = self._lines
                self._captured = CapturedLog(
                    head=tuple(lines.head()),
                    tail=tuple(lines.tail()),
                    total_lines=self._total,
                    omitted_lines=lines.omitted_lines,
                    omitted_bytes=lines.omitted_bytes + self._cut_bytes,
                )
            return self._captured


def _notify(subscriber: LineSubscriber, line: str) -> None:
    try:
        subscriber(line)
    except Exception:
        internal_logger().exception("a log line subscriber failed; it keeps receiving lines")


class CaptureProcessor(LogRecordProcessor):
    """Routes each record to the :class:`ExecutionLog` bound in its context.

    Never raises into the emitting code: a failure is reported on ``flash.internal``,
    which does not propagate back into the logging bridge.
    """

    def __init__(self, render: Callable[[ReadWriteLogRecord], str]) -> None:
        self._render = render
        self._key = create_key("flash.execution_log")
        self._active = True

    def bind(self, log: ExecutionLog, context: Context | None = None) -> Context:
        """A context in which records are captured into ``log``."""
        return set_value(self._key, log, context)

    def current(self, context: Context | None = None) -> ExecutionLog | None:
        """The log bound in ``context`` (default: the current one), if any."""
        log = get_value(self._key, context)
        return log if isinstance(log, ExecutionLog) else None

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Render the record into its execution's log, if it has one."""
        context = log_record.log_record.context
        if not context or not self._active:
            return
        log = context.get(self._key)
        if not isinstance(log, ExecutionLog):
            return
        try:
            log.append(self._render(log_record), bounded=is_stream_record(log_record))
        except Exception:
            internal_logger().exception("could not capture a log record")

    def shutdown(self) -> None:
        """Stop capturing."""
        self._active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered beyond the execution logs themselves."""
        return True
