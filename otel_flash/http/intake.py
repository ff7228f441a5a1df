"""One HTTP request in: its body read within limits, decoded, validated, and its span's attributes.

Plain ASGI (no framework): :func:`read_job` reads the scope and the body messages itself
and raises a :class:`~otel_flash.http.asgi.Refusal` with the status the worker answers:
400 (not JSON, an integer too long, nesting too deep, the client left while sending it),
408 (body too slow), 413 (body too large), 422 (not a request at all: a request
runpod-flash's own model accepts but that we cannot run is passed on as a mapping, for the
executor to answer ``success: false``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.util.types import AttributeValue

from otel_flash.exceptions import RequestError
from otel_flash.http.asgi import Receive, Refusal, Scope, request_headers
from otel_flash.protocol import FunctionRequest, parse_request, reference_accepts, unwrap_envelope
from otel_flash.semconv import JOB_ID, REQUEST_ID
from otel_flash.telemetry import invocation_attributes

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
_TRACE_HEADER_KEYS = tuple((name, name.encode()) for name in TRACE_HEADERS)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HttpJob:
    """One validated HTTP request: what to run, how to answer, what to record on the root span."""

    request: FunctionRequest | Mapping[str, Any]  # a mapping: model-valid, answered success false
    enveloped: bool
    attributes: Mapping[str, AttributeValue]
    trace_headers: Mapping[str, str]


async def read_job(
    scope: Scope, receive: Receive, route: str, max_body_bytes: int, body_timeout_s: float
) -> HttpJob:
    """The validated job of the request in ``scope`` on ``route``; its body is read within both limits."""
    headers = request_headers(scope)
    body = await _read_body(receive, headers.get(b"content-length"), max_body_bytes, body_timeout_s)
    payload = _decode(body)
    inner = unwrap_envelope(payload)
    parsed: FunctionRequest | Mapping[str, Any]
    try:
        parsed = parse_request(inner)
    except RequestError as exc:
        if not reference_accepts(inner):  # runpod-flash's model would refuse it too
            raise Refusal(422, str(exc)) from exc
        parsed = inner  # the executor answers it 200, success false, with the reason
    carrier = {name: headers[key].decode("latin-1") for name, key in _TRACE_HEADER_KEYS if key in headers}
    attributes = server_span_attributes(scope, headers, route)
    if inner is not payload and isinstance(payload.get("id"), str):
        attributes[JOB_ID] = payload["id"]
    raw_id = headers.get(b"x-request-id")
    request_id = None if raw_id is None else raw_id.decode("latin-1")
    if request_id is not None:
        attributes[REQUEST_ID] = request_id
    attributes.update(invocation_attributes("http", request_id))
    return HttpJob(parsed, inner is not payload, attributes, carrier)


def server_span_attributes(
    scope: Scope, headers: Mapping[bytes, bytes], route: str
) -> dict[str, AttributeValue]:
    """The OTel HTTP server attributes of ``flash.execute`` for the request in ``scope`` on ``route``.

    ``server.*`` come from the ``Host`` header when it is a valid authority, else from the
    address the request reached. The status code is 200: every execution is answered 200
    (``success`` tells how it went).
    """
    scheme = scope.get("scheme", "http")
    attributes: dict[str, AttributeValue] = {
        HTTP_REQUEST_METHOD: scope["method"],
        HTTP_ROUTE: route,
        HTTP_RESPONSE_STATUS_CODE: 200,
        URL_PATH: scope["path"],
        URL_SCHEME: scheme,
        NETWORK_PROTOCOL_VERSION: str(scope.get("http_version", "1.1")),
    }
    host = headers.get(b"host")
    name, port = (_authority(host.decode("latin-1")) if host else None) or _reached(scope, scheme)
    if name:
        attributes[SERVER_ADDRESS] = name
    if port is not None:
        attributes[SERVER_PORT] = port
    user_agent = headers.get(b"user-agent")
    if user_agent is not None:
        attributes[USER_AGENT_ORIGINAL] = user_agent.decode("latin-1")
    client = scope.get("client")
    if client:
        attributes[CLIENT_ADDRESS] = str(client[0])
    return attributes


@functools.lru_cache(maxsize=256)  # a worker sees few distinct Host values; splitting each costs microseconds
def _authority(host: str) -> tuple[str, int | None] | None:
    """The name (lower case, no brackets) and port of a ``Host`` value; None when it is not valid."""
    try:
        split = urlsplit(f"//{host}")
        return split.hostname or "", split.port
    except ValueError:  # a port that is not a number or out of range, an unclosed bracket
        return None


def _reached(scope: Scope, scheme: str) -> tuple[str, int | None]:
    """The address and port the request reached (no port when it is the scheme's default)."""
    server = scope.get("server")
    if not server or server[1] is None:
        return "", None
    port = server[1]
    return str(server[0]), None if port == _DEFAULT_PORTS.get(scheme) else port


async def _read_body(receive: Receive, declared: bytes | None, limit: int, timeout_s: float) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refusal(413, f"request body of {declared.decode()} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refusal(400, "the client went away while sending the request body")
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise Refusal(413, f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError as exc:
        msg = f"request body not received within {timeout_s:g} s"
        raise Refusal(408, msg, ((b"connection", b"close"),)) from exc


def _decode(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, UTF-8 or a too long integer
        raise Refusal(400, f"malformed JSON: {_parse_error(exc)}") from exc
    if not isinstance(payload, dict):
        raise Refusal(422, f"request must be a JSON object, got {type(payload).__name__}")
    return payload


def _parse_error(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)
