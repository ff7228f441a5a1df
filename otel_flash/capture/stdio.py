"""Per-execution capture of ``sys.stdout`` / ``sys.stderr`` without redirecting the process.

:class:`StreamRouter` replaces the process streams once. A write made where an
execution's log is bound in the current OpenTelemetry context becomes, line by
line, an OTel log record (attribute ``log.iostream``) that the capture processor
renders verbatim and the exporters see; any other write passes through untouched.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from opentelemetry._logs import Logger, SeverityNumber

from otel_flash.capture.processor import ExecutionLog
from otel_flash.capture.records import HandedLogRecord, emit_handed
from otel_flash.capture.render import IOSTREAM_ATTRIBUTE

StreamName = Literal["stdout", "stderr"]
_SEVERITY: dict[str, tuple[SeverityNumber, str]] = {
    "stdout": (SeverityNumber.INFO, "INFO"),
    "stderr": (SeverityNumber.WARN, "WARN"),
}
# Set while a captured line is being emitted: an exporter that prints must not loop back.
_emitting: ContextVar[bool] = ContextVar("flash_stdio_emitting", default=False)


def emit_stream_line(logger: Logger, stream: str, line: str) -> None:
    """Emit one captured output line as an OTel log record in the current context."""
    token = _emitting.set(True)
    try:
        number, text = _SEVERITY[stream]
        record = HandedLogRecord(
            timestamp=time.time_ns(),
            severity_number=number,
            severity_text=text,
            body=line,
            attributes={IOSTREAM_ATTRIBUTE: stream},
        )
        emit_handed(logger, record)
    finally:
        _emitting.reset(token)


class LineSink:
    """Delivers an execution's captured output lines, redacted.

    As OTel log records (attribute ``log.iostream``) when something besides the capture
    reads records (an exporter, a test), which the capture processor then renders; else
    straight into the execution's log, skipping records nobody would read.
    """

    __slots__ = ("_logger", "_records_wanted", "_redact")

    def __init__(
        self,
        logger: Logger,
        redact: Callable[[str], str] = str,
        records_wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self._logger = logger
        self._redact = redact
        self._records_wanted = records_wanted

    def deliver(self, log: ExecutionLog, stream: str, lines: list[str]) -> None:
        """Deliver ``lines`` written to ``stream`` in the current context into ``log``."""
        if lines and self._records_wanted():
            for line in lines:
                emit_stream_line(self._logger, stream, self._redact(line))
        else:
            for line in lines:
                log.append(self._redact(line), bounded=True)


class CapturedStream(io.TextIOBase):
    """What every stand-in for ``sys.stdout``/``sys.stderr`` shares (here and in a function process).

    Text only, always writable, never a terminal (progress bars fall back to plain
    lines), on the descriptor of the ``original`` stream it stands in for.
    """

    def __init__(self, original: Any, stream: str) -> None:
        super().__init__()
        self.original = original
        self._stream = stream

    def writable(self) -> bool:
        """Always writable."""
        return True

    def isatty(self) -> bool:
        """Never a terminal: progress bars fall back to plain lines."""
        return False

    def fileno(self) -> int:
        """The original stream's descriptor (writes to it bypass this stream)."""
        return int(self.original.fileno())


def require_text(text: object) -> None:
    """Refuse what ``write`` of a text stream refuses: anything but ``str``."""
    if not isinstance(text, str):
        msg = f"write() argument must be str, not {type(text).__name__}"
        raise TypeError(msg)


class StreamRouter(CapturedStream):
    """A text stream that sends writes of executions to their logs, others to ``original``."""

    original: TextIO

    def __init__(
        self,
        original: TextIO,
        stream: StreamName,
        current_log: Callable[[], ExecutionLog | None],
        sink: LineSink,
    ) -> None:
        super().__init__(original, stream)
        self._current_log = current_log
        self._sink = sink

    def write(self, text: str) -> int:
        """Capture ``text`` for the current execution, or pass it through."""
        log = None if _emitting.get() else self._current_log()
        if log is None or log.closed:
            return self.original.write(text)
        if type(text) is not str:  # the common case without a call (two writes per print)
            require_text(text)
        self._sink.deliver(log, self._stream, log.feed(self._stream, text))
        return len(text)

    def flush(self) -> None:
        """Flush the original stream (captured lines need no flushing)."""
        self.original.flush()

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        """The original stream's encoding."""
        return getattr(self.original, "encoding", "utf-8") or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        """The original stream's error handler (TextIOBase would answer None)."""
        return getattr(self.original, "errors", "strict") or "strict"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class StdioRouting:
    """Installs routers on ``sys.stdout`` and ``sys.stderr`` and puts the originals back.

    Whoever replaces a process stream after installation (a test runner, the host) is
    wrapped again by :meth:`ensure_installed`, which the executor calls per execution.
    """

    def __init__(
        self,
        current_log: Callable[[], ExecutionLog | None],
        sink: LineSink,
    ) -> None:
        self._current_log = current_log
        self._sink = sink
        self._routers: dict[StreamName, StreamRouter] = {}
        self.ensure_installed()

    def ensure_installed(self) -> None:
        """Route both streams, wrapping whatever stream is in place now if it is not ours."""
        for name in ("stdout", "stderr"):
            stream: StreamName = "stdout" if name == "stdout" else "stderr"
            current = getattr(sys, name)
            router = self._routers.get(stream)
            if current is router:
                continue
            router = StreamRouter(current, stream, self._current_log, self._sink)
            self._routers[stream] = router
            setattr(sys, name, router)

    def reclaim(self) -> list[str]:
        """Put our routers back where code replaced them; the names of the streams reclaimed.

        Called when an execution ends: a stream replaced during it was replaced by user code.
        """
        reclaimed: list[str] = []
        for name, router in self._routers.items():
            if getattr(sys, name) is not router:
                setattr(sys, name, router)
                reclaimed.append(name)
        return reclaimed

    def uninstall(self) -> None:
        """Restore the streams this routing replaced, where nobody replaced them since."""
        for name, router in self._routers.items():
            if getattr(sys, name) is router:
                setattr(sys, name, router.original)
