"""One HTTP request in: its body read within limits, decoded, validated, and its span's attributes.

:func:`read_job` raises FastAPI's ``HTTPException`` with the status the worker answers:
400 (not JSON, an integer too long, nesting too deep), 408 (body too slow), 413 (body too
large), 422 (not a request at all: a request runpod-flash's own model accepts but that we
cannot run is passed on as a mapping, for the executor to answer ``success: false``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
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
from otel_flash.protocol import FunctionRequest, parse_request, reference_accepts, unwrap_envelope
from otel_flash.semconv import JOB_ID, REQUEST_ID
from otel_flash.telemetry import invocation_attributes

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


@dataclass(frozen=True, slots=True)
class HttpJob:
    """One validated HTTP request: what to run, how to answer, what to record on the root span."""

    request: FunctionRequest | Mapping[str, Any]  # a mapping: model-valid, answered success false
    enveloped: bool
    attributes: Mapping[str, AttributeValue]
    trace_headers: Mapping[str, str]


async def read_job(request: Request, route: str, max_body_bytes: int, body_timeout_s: float) -> HttpJob:
    """The validated job of ``request`` on ``route``; its body is read within both limits."""
    payload = _decode(await _read_body(request, max_body_bytes, body_timeout_s))
    inner = unwrap_envelope(payload)
    parsed: FunctionRequest | Mapping[str, Any]
    try:
        parsed = parse_request(inner)
    except RequestError as exc:
        if not reference_accepts(inner):  # runpod-flash's model would refuse it too
            raise HTTPException(422, str(exc)) from exc
        parsed = inner  # the executor answers it 200, success false, with the reason
    carrier = {name: request.headers[name] for name in TRACE_HEADERS if name in request.headers}
    attributes = server_span_attributes(request, route)
    if inner is not payload and isinstance(payload.get("id"), str):
        attributes[JOB_ID] = payload["id"]
    request_id = request.headers.get("x-request-id")
    if request_id is not None:
        attributes[REQUEST_ID] = request_id
    attributes.update(invocation_attributes("http", request_id))
    return HttpJob(parsed, inner is not payload, attributes, carrier)


def server_span_attributes(request: Request, route: str) -> dict[str, AttributeValue]:
    """The OTel HTTP server attributes of ``flash.execute`` for ``request`` on ``route``.

    The status code is 200: every execution is answered 200 (``success`` tells how it went).
    """
    url = request.url
    attributes: dict[str, AttributeValue] = {
        HTTP_REQUEST_METHOD: request.method,
        HTTP_ROUTE: route,
        HTTP_RESPONSE_STATUS_CODE: 200,
        URL_PATH: url.path,
        URL_SCHEME: url.scheme,
        NETWORK_PROTOCOL_VERSION: str(request.scope.get("http_version", "1.1")),
    }
    if url.hostname:
        attributes[SERVER_ADDRESS] = url.hostname
    if url.port is not None:
        attributes[SERVER_PORT] = url.port
    if "user-agent" in request.headers:
        attributes[USER_AGENT_ORIGINAL] = request.headers["user-agent"]
    if request.client is not None:
        attributes[CLIENT_ADDRESS] = request.client.host
    return attributes


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HTTPException(413, f"request body is over the limit of {limit} bytes")
    except TimeoutError as exc:
        msg = f"request body not received within {timeout_s:g} s"
        raise HTTPException(408, msg, headers={"Connection": "close"}) from exc
    return bytes(body)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, UTF-8 or a too long integer
        raise HTTPException(400, f"malformed JSON: {_parse_error(exc)}") from exc
    if not isinstance(payload, dict):
        raise HTTPException(422, f"request must be a JSON object, got {type(payload).__name__}")
    return payload


def _parse_error(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)
