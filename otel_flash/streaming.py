"""Live streams of executions: each captured line as it is emitted, then the response.

:class:`ExecutionStreams` runs every streamed execution in an asyncio task of its
own. The consumer of :meth:`ExecutionStreams.stream` only reads a queue that the
execution's line subscriber fills; a consumer that goes away (an HTTP client that
disconnects) stops reading, its later lines are dropped, and the execution still
runs to completion. :meth:`ExecutionStreams.drain` waits for those orphans at
shutdown.

The wire form of a stream is NDJSON, one :func:`event_json` object per line::

    {"type": "log", "line": "2026-11-28T11:15:25.123Z | INFO | loading"}
    {"type": "response", "response": {"success": true, ...}}
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_flash._internal import internal_logger
from otel_flash.executor import RemoteExecutor, RequestLike
from otel_flash.protocol import FunctionResponse
from otel_flash.runtime import json_bytes

__all__ = [
    "NDJSON_MEDIA_TYPE",
    "ExecutionStreams",
    "LogLine",
    "StreamEvent",
    "dropped_marker",
    "event_dict",
    "event_json",
]

NDJSON_MEDIA_TYPE = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One captured line of a running execution (may hold newlines: a traceback stays whole)."""

    line: str


StreamEvent = LogLine | FunctionResponse


def event_dict(event: StreamEvent) -> dict[str, Any]:
    """The JSON object of one stream event: ``{"type": "log", ...}`` or ``{"type": "response", ...}``."""
    if isinstance(event, LogLine):
        return {"type": "log", "line": event.line}
    return {"type": "response", "response": event.model_dump(mode="json")}


def event_json(event: StreamEvent) -> str:
    """One NDJSON line (with its ``\\n``) for ``event``."""
    return json_bytes(event_dict(event)).decode() + "\n"


def dropped_marker(count: int) -> str:
    """The live line standing where a slow reader's lines were dropped."""
    return f"[... {count} lines dropped from the live stream (too slow a reader); the response has them ...]"


class _Feed:
    """The line subscriber of one stream: hands lines to the event loop, fast and thread-safe.

    ``__call__`` runs in whichever thread emits the line, under the execution log's
    lock, so it only schedules :meth:`_put` on the loop. There, at most
    ``max_pending`` unread lines are held; beyond that lines are counted and dropped,
    and one marker line says how many before the next line that fits. Once closed
    (the reader left) every line is dropped.
    """

    __slots__ = ("_dropped", "_loop", "_max_pending", "closed", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending: int) -> None:
        self._loop = loop
        self._max_pending = max_pending
        self._dropped = 0
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False

    def __call__(self, line: str) -> None:
        if self.closed:
            return
        try:
            self._loop.call_soon_threadsafe(self._put, line)
        except RuntimeError:  # the loop is closed: nobody is left to read the line
            self.closed = True

    def finish(self) -> None:
        """Queue the end of the stream (after a last marker, if lines were dropped)."""
        self._put(None)

    def _put(self, line: str | None) -> None:
        if self.closed:
            return
        if line is not None and self.queue.qsize() >= self._max_pending:
            self._dropped += 1
            return
        if self._dropped:
            self.queue.put_nowait(dropped_marker(self._dropped))
            self._dropped = 0
        self.queue.put_nowait(line)


class ExecutionStreams:
    """Streams executions of one executor; each runs in its own task, whatever the reader does.

    Args:
        executor: runs the executions.
        max_pending: unread lines held per stream before lines are dropped from the
            live stream (never from the response).
    """

    def __init__(self, executor: RemoteExecutor, *, max_pending: int = 10_000) -> None:
        self._executor = executor
        self._max_pending = max_pending
        self._running: set[asyncio.Task[FunctionResponse]] = set()

    @property
    def running(self) -> int:
        """Streamed executions still running (including those whose reader left)."""
        return len(self._running)

    async def stream(
        self,
        request: RequestLike,
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield a :class:`LogLine` per captured line as it is emitted, then the response.

        ``attributes`` and ``trace_headers`` as for :meth:`RemoteExecutor.execute_sync`.
        Closing or cancelling the iterator early leaves the execution running.
        """
        loop = asyncio.get_running_loop()
        feed = _Feed(loop, self._max_pending)
        execution = self._executor.execute(
            request, on_line=feed, attributes=attributes, trace_headers=trace_headers
        )
        task = loop.create_task(execution)
        self._running.add(task)
        task.add_done_callback(self._finished)
        # Lines are scheduled with call_soon_threadsafe before the task can finish, so
        # the end scheduled by this done callback always comes after the last line.
        task.add_done_callback(lambda _task: feed.finish())
        try:
            while (line := await feed.queue.get()) is not None:
                yield LogLine(line)
            yield task.result()
        finally:
            feed.closed = True

    async def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for running executions; return how many are still running."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)
        return len(self._running)

    def _finished(self, task: asyncio.Task[FunctionResponse]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            internal_logger().error("a streamed execution failed", exc_info=task.exception())
