"""Running an installer as a child process whose output streams out as log records.

Both pipes are read line by line in the calling thread (with ``selectors``), so
each line is logged while the process runs, in the caller's OpenTelemetry
context: the execution's log captures it and the phase span correlates it.
A line's level comes from what it says, not from the pipe it came through
(:class:`OutputLevels`): installers write their progress to stderr.
The child leads a new session; on timeout its whole process group is killed
and reaped, and what it wrote before is kept.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from otel_flash.redaction import redact_urls

_DRAIN_AFTER_KILL_S = 2.0  # a daemon that escaped the group may keep a pipe open
# How uv, pip and apt-get start a line that is a warning or an error (compared lowercased).
_LEVEL_PREFIXES = (
    ("error:", logging.ERROR),
    ("e: ", logging.ERROR),
    ("warning:", logging.WARNING),
    ("w: ", logging.WARNING),
    ("\u00d7 ", logging.ERROR),  # the multiplication sign heading uv and pip "No solution found" reports
)


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """How a streamed process ended.

    Attributes:
        exit_code: the process's exit status (negative: killed by that signal).
        timed_out: it ran past its time limit and its process group was killed.
        tail: its last output lines (redacted), for error messages.
    """

    exit_code: int
    timed_out: bool
    tail: tuple[str, ...]


class OutputLevels:
    """The log level of each line an installer writes, on either pipe.

    INFO for progress (``Resolved 1 package`` goes to stderr); WARNING and ERROR
    for lines that say so (``warning:``/``error:`` as uv and pip write them,
    ``W:``/``E:`` as apt-get does, even indented). Other indented lines continue the line above and
    keep its level; after an error every line is ERROR: the install is failing
    and the rest is its explanation.
    """

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current = logging.INFO

    def __call__(self, line: str) -> int:
        """The level of ``line``, the next line the process wrote."""
        if self._current == logging.ERROR:
            return logging.ERROR
        lowered = line.lstrip().lower()
        said = next((level for prefix, level in _LEVEL_PREFIXES if lowered.startswith(prefix)), None)
        if said is not None:
            self._current = said
        elif not line[:1].isspace():
            self._current = logging.INFO
        return self._current


class _LineSplitter:
    """Turns one pipe's bytes into whole, decoded lines."""

    __slots__ = ("_decoder", "_pending")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(data, final=not data)
        *lines, self._pending = text.split("\n")
        if not data and self._pending:
            lines.append(self._pending)
            self._pending = ""
        return [line.rstrip("\r") for line in lines]


def run_streamed(
    argv: Sequence[str],
    *,
    timeout_s: float,
    logger: logging.Logger,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    tail_lines: int = 20,
) -> ProcessOutcome:
    """Run ``argv`` (never through a shell), logging each line at the level :class:`OutputLevels` gives it.

    Raises:
        OSError: the program cannot be started.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    reader = _Reader(process, logger, tail_lines)
    timed_out = not reader.pump(time.monotonic() + timeout_s)
    if timed_out:
        _kill_group(process)
        reader.pump(time.monotonic() + _DRAIN_AFTER_KILL_S)
    else:
        try:
            process.wait(max(0.0, reader.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # closed its pipes, then kept running
            timed_out = True
            _kill_group(process)
    _close_pipes(process)
    return ProcessOutcome(process.wait(), timed_out, tuple(reader.tail))


class _Reader:
    """Reads both pipes of one process into log records, keeping the last lines."""

    __slots__ = ("_levels", "_logger", "_splitters", "deadline", "tail")

    def __init__(self, process: subprocess.Popen[bytes], logger: logging.Logger, tail_lines: int) -> None:
        self._logger = logger
        self._levels = OutputLevels()
        pipes = (process.stdout, process.stderr)
        self._splitters = {pipe: _LineSplitter() for pipe in pipes if pipe is not None}
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.deadline = 0.0

    def pump(self, deadline: float) -> bool:
        """Log lines until both pipes end (True) or ``deadline`` passes (False)."""
        self.deadline = deadline
        with selectors.DefaultSelector() as selector:
            for stream in self._splitters:
                if not stream.closed:
                    selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                for key, _ in selector.select(remaining):
                    pipe: IO[bytes] = key.fileobj  # type: ignore[assignment]  # we registered IO[bytes]
                    data = os.read(pipe.fileno(), 65536)
                    self._emit(self._splitters[pipe].feed(data))
                    if not data:
                        selector.unregister(pipe)
                        pipe.close()
        return True

    def _emit(self, lines: list[str]) -> None:
        for line in lines:
            shown = redact_urls(line)
            self.tail.append(shown)
            self._logger.log(self._levels(line), "%s", shown)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdout, process.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()
