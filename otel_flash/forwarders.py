"""``sys.stdout`` / ``sys.stderr`` of a function process: writes travel to the worker as lines.

A :class:`TextForwarder` stands in for each stream in the child (:mod:`otel_flash.child`)
and behaves like the worker's own in-process capture: ``encoding``, ``errors``,
``name``, ``mode``, ``line_buffering``, ``isatty()``, ``fileno()``, ``reconfigure()``,
and a ``buffer`` (:class:`BinaryForwarder`) whose bytes are decoded and sent the same
way, so code writing bytes to ``sys.stdout.buffer`` is captured line by line too.
"""

from __future__ import annotations

import codecs
import io
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

Send = Callable[[dict[str, Any]], None]


class TextForwarder(io.TextIOBase):
    """A child's ``sys.stdout``/``sys.stderr``: written lines go to the worker with their span.

    Each thread's writes are gathered up to a newline first (``print`` writes the text
    and the newline separately, and another thread may write in between). The worker
    assembles and bounds lines exactly as it does for in-process ``print``; using the
    control channel keeps them in order with the log records. Descriptor-level writes
    bypass this and travel on the pipes. A pending text longer than ``chunk``
    characters is sent without waiting for its newline.
    """

    def __init__(self, original: Any, stream: str, send: Send, chunk: int) -> None:
        super().__init__()
        self.original = original
        self._stream = stream
        self._send = send
        self._chunk = max(chunk, 1024)
        self._pending: dict[int, str] = {}
        self._buffer = BinaryForwarder(self)

    def write(self, text: str) -> int:
        """Send the complete lines of this thread's writes to the worker, tagged with the current span."""
        if not isinstance(text, str):
            msg = f"write() argument must be str, not {type(text).__name__}"
            raise TypeError(msg)
        thread = threading.get_ident()
        pending = self._pending.pop(thread, "") + text
        cut = pending.rfind("\n") + 1
        if len(pending) > self._chunk:
            cut = len(pending)
        if cut:
            self._forward(pending[:cut])
        if cut < len(pending):
            self._pending[thread] = pending[cut:]
        return len(text)

    def flush_pending(self) -> None:
        """Send what every thread wrote without a newline yet."""
        while self._pending:
            self._forward(self._pending.popitem()[1])

    def _forward(self, text: str) -> None:
        context = trace.get_current_span().get_span_context()
        for start in range(0, len(text), self._chunk):
            self._send(
                {
                    "op": "write",
                    "stream": self._stream,
                    "text": text[start : start + self._chunk],
                    "trace_id": context.trace_id,
                    "span_id": context.span_id,
                    "flags": int(context.trace_flags),
                }
            )

    def writable(self) -> bool:
        """Always writable."""
        return True

    def isatty(self) -> bool:
        """Never a terminal: progress bars fall back to plain lines, as in-process."""
        return False

    def fileno(self) -> int:
        """The descriptor under it (a pipe to the worker as well)."""
        return int(self.original.fileno())

    def reconfigure(self, **settings: Any) -> None:
        """Accepted and ignored: lines always travel as UTF-8 text, whatever is asked."""

    @property
    def buffer(self) -> BinaryForwarder:
        """The binary layer: bytes written here are decoded (UTF-8) and captured as lines too."""
        return self._buffer

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        """UTF-8, as the worker decodes."""
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        """How undecodable bytes written to :attr:`buffer` are shown."""
        return "replace"

    @property
    def name(self) -> str:
        """``<stdout>`` or ``<stderr>``, as the interpreter names its streams."""
        return f"<{self._stream}>"

    @property
    def mode(self) -> str:
        """Text, write only."""
        return "w"

    @property
    def line_buffering(self) -> bool:
        """Lines are sent as they complete."""
        return True


class BinaryForwarder(io.BufferedIOBase):
    """``sys.stdout.buffer`` of a child: bytes decoded per thread, then sent as text lines."""

    def __init__(self, text: TextForwarder) -> None:
        super().__init__()
        self._text = text
        self._decoders: dict[int, codecs.IncrementalDecoder] = {}

    def write(self, data: Any) -> int:
        """Decode ``data`` (any bytes-like object) and write it to the text stream."""
        raw = bytes(memoryview(data))
        thread = threading.get_ident()
        decoder = self._decoders.get(thread)
        if decoder is None:
            decoder = self._decoders.setdefault(thread, codecs.getincrementaldecoder("utf-8")("replace"))
        self._text.write(decoder.decode(raw))
        return len(raw)

    def writable(self) -> bool:
        """Always writable."""
        return True

    def isatty(self) -> bool:
        """Never a terminal, as the text stream."""
        return False

    def fileno(self) -> int:
        """The descriptor under the text stream."""
        return self._text.fileno()

    @property
    def name(self) -> str:
        """The text stream's name."""
        return self._text.name

    @property
    def mode(self) -> str:
        """Binary, write only."""
        return "wb"
