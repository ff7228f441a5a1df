"""ASGI plumbing of the HTTP worker, without a framework: types, request headers, JSON answers.

:class:`Refusal` is the one error answer of the worker's own HTTP code: the guard returns
one instead of calling the app, the intake raises one, and both are sent as JSON
``{"detail": ...}`` by :func:`send_json`, the worker's one way of answering JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from otel_flash.runtime import json_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]
JSON_MEDIA_TYPE = "application/json"
_JSON_CONTENT_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())


class Refusal(Exception):
    """An answer given instead of the route's: a status, a message, extra headers.

    Args:
        status: the HTTP status.
        detail: the message, sent as ``{"detail": detail}``.
        headers: extra response headers, names in lower case.
    """

    def __init__(self, status: int, detail: str, headers: Headers = ()) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers

    async def send(self, send: Send) -> None:
        """Send the refusal as a JSON ``{"detail": ...}`` response."""
        await send_json(send, self.status, json_bytes({"detail": self.detail}), self.headers)


async def send_json(send: Send, status: int, body: bytes, headers: Headers = ()) -> None:
    """Send one whole ``application/json`` response of ``body`` (encoded JSON)."""
    start = [(b"content-length", str(len(body)).encode()), _JSON_CONTENT_TYPE, *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def request_headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers by lowercase name; the first value of a repeated header wins."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.lower(), value)
    return found


def route_path(scope: Scope) -> str:
    """The request's path within the app: ``scope["path"]`` without the ``root_path`` it is mounted at."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
