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

GRACEFUL_SHUTDOWN_S = 30


def uvicorn_options(config: FlashConfig) -> dict[str, Any]:
    """uvicorn's settings for ``config``'s limits (``otel-flash serve`` passes them to ``uvicorn.run``)."""
    return {
        "http": header_deadline_protocol(config.header_timeout_s),
        "limit_concurrency": config.max_connections,
        "timeout_keep_alive": math.ceil(config.keepalive_timeout_s),
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }


def header_deadline_protocol(
    timeout_s: float, base: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class ``base``, closing connections that are slow to send headers."""
    return type("HeaderDeadlineProtocol", (_HeaderDeadline, base), {"header_timeout_s": timeout_s})


class _HeaderDeadline(asyncio.Protocol):
    """Mixed in before uvicorn's protocol: arms a deadline whenever the next request's headers are due."""

    header_timeout_s = 10.0
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

    def _arm(self) -> None:
        self.loop.call_later(self.header_timeout_s, self._deadline, self.cycle)

    def _deadline(self, cycle_when_armed: object) -> None:
        """No new request started since the deadline was armed: close the connection."""
        if self.cycle is cycle_when_armed and not self.transport.is_closing():
            self.transport.close()
