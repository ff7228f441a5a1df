"""The HTTP worker's gate: who may call it and what it accepts, decided before any route runs.

:class:`RequestGuard` is plain ASGI middleware (no framework import), checking in order:

1. ``Host`` (421): on a loopback bind, only loopback names (``localhost``, ``127.x.x.x``,
   ``[::1]``, with or without a port) are served, so a page the operator visits cannot
   reach the worker through DNS rebinding.
2. ``Authorization`` (401 with ``WWW-Authenticate: Bearer``): with API keys set, every
   path but the open ones (``/ping``) needs ``Bearer <key>``; each key is compared in
   constant time. Without keys, a request that reached a non-loopback address is refused
   (403) unless unauthenticated access was allowed: ``serve``'s start-up rule, kept for
   apps embedded in a server of their own.
3. ``Content-Type`` (415): a ``POST`` to an execution path runs only ``application/json``
   bodies, so a browser's no-preflight ``text/plain`` or form post is never executed.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress

from otel_flash.http.asgi import (
    JSON_MEDIA_TYPE,
    ASGIApp,
    Receive,
    Refusal,
    Scope,
    Send,
    request_headers,
    route_path,
)


@functools.lru_cache(maxsize=256)  # a worker sees few distinct names; parsing each costs microseconds
def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``), brackets allowed."""
    name = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a ``Host`` header value: ``[::1]:8000`` -> ``[::1]``, ``a:80`` -> ``a``."""
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class RequestGuard:
    """ASGI middleware refusing requests that fail the host, key or content-type check.

    Args:
        app: the application behind the gate.
        api_keys: accepted bearer tokens; empty means no authentication.
        allow_unauthenticated: without keys, serve requests that reached a non-loopback
            address too (a gateway in front authenticates).
        open_paths: paths served without a key (health checks).
        json_paths: paths whose ``POST`` bodies must be ``application/json``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: tuple[str, ...],
        allow_unauthenticated: bool,
        open_paths: frozenset[str],
        json_paths: frozenset[str],
    ) -> None:
        self.app = app
        self._keys = tuple(key.encode() for key in api_keys)
        self._allow_unauthenticated = allow_unauthenticated
        self._open_paths = open_paths
        self._json_paths = json_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal.send(send)

    def refusal(self, scope: Scope) -> Refusal | None:
        """Why this request is refused, or None to let it through."""
        headers = request_headers(scope)
        path = route_path(scope)
        return (
            _foreign_host(scope, headers)
            or self._unauthorised(scope, path, headers)
            or self._not_json(scope, path, headers)
        )

    def _unauthorised(self, scope: Scope, path: str, headers: dict[bytes, bytes]) -> Refusal | None:
        if path in self._open_paths:
            return None
        if not self._keys:
            if self._allow_unauthenticated or _on_loopback(scope):
                return None
            return Refusal(
                403, "this worker is reachable beyond loopback without an API key: set FLASH_API_KEY"
            )
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and _known(token.strip(), self._keys):
            return None
        if scheme:
            return Refusal(401, "invalid API key", ((b"www-authenticate", b'Bearer error="invalid_token"'),))
        return Refusal(401, "an API key is required: Authorization: Bearer <key>", _CHALLENGE)

    def _not_json(self, scope: Scope, path: str, headers: dict[bytes, bytes]) -> Refusal | None:
        if scope["method"] != "POST" or path not in self._json_paths:
            return None
        media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if media_type == JSON_MEDIA_TYPE.encode():
            return None
        shown = media_type.decode("latin-1") or "none"
        return Refusal(415, f"the request body must be application/json (Content-Type: {shown})")


_CHALLENGE = ((b"www-authenticate", b"Bearer"),)


def _known(token: bytes, keys: tuple[bytes, ...]) -> bool:
    """Compare ``token`` with every key in constant time (no early exit on the first match)."""
    matches = [hmac.compare_digest(token, key) for key in keys]
    return any(matches)


def _address(scope: Scope) -> str | None:
    """The address the request reached; None for a Unix socket."""
    server = scope.get("server")
    return None if not server or server[1] is None else str(server[0])


def _on_loopback(scope: Scope) -> bool:
    """True when the request reached a loopback address (or a Unix socket: local too)."""
    address = _address(scope)
    return address is None or is_loopback_host(address)


def _foreign_host(scope: Scope, headers: dict[bytes, bytes]) -> Refusal | None:
    address = _address(scope)
    if address is None or not is_loopback_host(address):
        return None
    host = headers.get(b"host", b"").decode("latin-1")
    if is_loopback_host(host_name(host)):
        return None
    detail = f"this worker listens on loopback and answers only loopback names, not Host {host[:100]!r}"
    return Refusal(421, detail)
