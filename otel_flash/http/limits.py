"""How ``otel-flash serve`` bounds uvicorn's connections: the options, and a header deadline.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) and answers 503
past ``limit_concurrency``, but waits forever for a connection to finish sending its
request headers, so a client trickling header bytes (or sending nothing) holds its
connection, and enough of them would hold every slot. :func:`header_deadline_protocol`
closes a connection whose next request's headers are not complete within
``header_timeout_s`` of the connection opening or of the previous response.

It subclasses the protocol uvicorn picks itself (``httptools`` when installed, else
``h11``) and relies on two of their internals, pinned by ``tests/test_guard.py``:
``on_response_complete()`` and ``cycle`` (replaced when a request's headers are complete).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from otel_flash.config import FlashConfig


def uvicorn_options(config: FlashConfig) -> dict[str, Any]:
    """uvicorn's settings for ``config``'s limits (``otel-flash serve`` passes them to ``uvicorn.run``)."""
    return {
        "http": header_deadline_protocol(config.header_timeout_s),
        "limit_concurrency": config.max_connections,
        "timeout_keep_alive": math.ceil(config.keepalive_timeout_s),
        # uvicorn waits for open requests only until the drain has answered them all
        "timeout_graceful_shutdown": max(1, math.ceil(config.shutdown_grace_s + 1)),
    }


def header_deadline_protocol(
    timeout_s: float, base: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class ``base``, closing connections that are slow to send headers."""
    return type("HeaderDeadlineProtocol", (_HeaderDeadline, base), {"header_timeout_s": timeout_s})


class _HeaderDeadline(asyncio.Protocol):
    """Mixed in before uvicorn's protocol: a deadline whenever the next request's headers are due.

    A connection holds at most one timer: each response only moves the deadline, and the
    timer, when it fires, closes the connection (no request started since the deadline was
    set, and it has passed) or waits on for the moved deadline.
    """

    header_timeout_s = 10.0
    _timer: asyncio.TimerHandle | None = None
    _due = 0.0
    _cycle_when_armed: object = None
    # uvicorn's protocol sets these
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: object

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # defined by uvicorn's protocol classes
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._due = self.loop.time() + self.header_timeout_s
        self._cycle_when_armed = self.cycle
        if self._timer is None:
            self._timer = self.loop.call_at(self._due, self._deadline)

    def _deadline(self) -> None:
        """Close the connection if no new request started by the deadline; else wait for the next one."""
        self._timer = None
        if self.transport.is_closing() or self.cycle is not self._cycle_when_armed:
            return  # closed, or a request is running: its response arms the deadline again
        if self.loop.time() < self._due:
            self._timer = self.loop.call_at(self._due, self._deadline)
        else:
            self.transport.close()
