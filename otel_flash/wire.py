"""What travels between the worker and a function process: length-prefixed JSON frames.

Each frame is a 4-byte big-endian length and a JSON object. JSON, not pickle: the
worker must never unpickle what a process running user code wrote, or that code
could run in the worker. Every frame is bounded (:func:`frame_limit`, a few times
``max_line_bytes``): the child cuts what it sends to fit (:func:`encode_bounded`), and
the worker refuses a larger frame from its header alone. Finished spans and log records
are flattened here into plain objects (:func:`span_message`, :func:`log_message`) and spans rebuilt on the
worker's side (:func:`decode_span`); log records are re-emitted by
:mod:`otel_flash.isolation`.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk._logs import ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_flash.exceptions import IsolationError

Message = dict[str, Any]
_HEADER = struct.Struct(">I")
_CUT_MARK = "...[cut]"
_STUB_CHARS = 256


def frame_limit(max_line_bytes: int) -> int:
    """The largest frame either side accepts: a few lines' worth (JSON escapes a byte in 6 at most)."""
    return 8 * max_line_bytes + (64 << 10)


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """One frame: header and JSON (ASCII-escaped, so lone surrogates survive)."""
    body = json.dumps(message, separators=(",", ":"), default=repr).encode("ascii")
    return _HEADER.pack(len(body)) + body


def encode_bounded(message: Mapping[str, Any], limit: int) -> bytes:
    """One frame of at most ``limit`` bytes: strings are cut, then nested values emptied, until it fits.

    What a span or record cannot carry whole arrives cut rather than ending the execution.
    """
    frame = encode_frame(message)
    for chars in (limit // 16, limit // 128):
        if len(frame) <= limit:
            return frame
        frame = encode_frame(cut_strings(message, chars))
    if len(frame) <= limit:
        return frame
    stub = {key: _stub_value(value) for key, value in message.items()}
    return encode_frame(stub)


def cut_strings(value: Any, chars: int, depth: int = 0) -> Any:
    """``value`` with every string longer than ``chars`` cut to that length (and marked)."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + _CUT_MARK
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {str(key)[:chars]: cut_strings(item, chars, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [cut_strings(item, chars, depth + 1) for item in value]
    return value


def _stub_value(value: Any) -> Any:
    """A top-level value made small: strings cut short, maps emptied, lists of containers emptied."""
    if isinstance(value, dict):
        return {}
    if isinstance(value, list | tuple):
        return (
            []
            if any(isinstance(item, dict | list | tuple) for item in value)
            else cut_strings(value, _STUB_CHARS)
        )
    return cut_strings(value, _STUB_CHARS)


def send_frame(sock: socket.socket, message: Mapping[str, Any]) -> None:
    """Write one frame, blocking until it is all sent."""
    sock.sendall(encode_frame(message))


def recv_frame(sock: socket.socket) -> Message | None:
    """Read one frame, blocking; None at end of stream.

    Raises:
        IsolationError: the stream is cut inside a frame or holds something else.
    """
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _recv_exactly(sock, size) if size else b""
    if body is None:
        msg = "the stream ended inside a frame"
        raise IsolationError(msg)
    return _decode(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class FrameReader:
    """Cuts frames out of bytes read as they come (for a non-blocking reader)."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_frame_bytes: int) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[Message]:
        """The frames ``data`` completes, in order.

        Raises:
            IsolationError: a frame is larger than allowed or is not a JSON object.
        """
        self._buffer += data
        messages: list[Message] = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self._max:  # refused from its header: the body is never read
                msg = f"a frame of {size} bytes, over the limit of {self._max} bytes"
                raise IsolationError(msg)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            messages.append(_decode(bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return messages


def _decode(body: bytes) -> Message:
    try:
        message = json.loads(body)
    except ValueError as exc:
        msg = f"a frame is not JSON: {exc}"
        raise IsolationError(msg) from exc
    if not isinstance(message, dict):
        msg = f"a frame holds a {type(message).__name__}, not an object"
        raise IsolationError(msg)
    return message


def span_message(span: ReadableSpan) -> Message:
    """A finished span as a plain object."""
    context = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    return {
        "op": "span",
        "name": span.name,
        "trace_id": context.trace_id if context else 0,
        "span_id": context.span_id if context else 0,
        "flags": int(context.trace_flags) if context else 0,
        "parent": [parent.span_id, int(parent.trace_flags)] if parent else None,
        "kind": span.kind.value,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": dict(span.attributes or {}),
        "events": [[e.name, e.timestamp, dict(e.attributes or {})] for e in span.events],
        "links": [
            [
                link.context.trace_id,
                link.context.span_id,
                int(link.context.trace_flags),
                dict(link.attributes or {}),
            ]
            for link in span.links
        ],
        "status": [span.status.status_code.value, span.status.description],
        "scope": [scope.name, scope.version] if scope else ["", None],
    }


def decode_span(message: Mapping[str, Any], resource: Resource) -> ReadableSpan:
    """Rebuild a span sent by :func:`span_message`, as if ``resource``'s provider had made it.

    Raises:
        IsolationError: the message is not a well-formed span.
    """
    try:
        trace_id = int(message["trace_id"])
        flags = TraceFlags(int(message["flags"]))
        parent = message["parent"]
        status_code, description = message["status"]
        scope_name, scope_version = message["scope"]
        return ReadableSpan(
            name=str(message["name"]),
            context=SpanContext(trace_id, int(message["span_id"]), False, flags),
            parent=SpanContext(trace_id, int(parent[0]), False, TraceFlags(int(parent[1])))
            if parent
            else None,
            resource=resource,
            attributes=_attributes(message["attributes"]),
            events=[
                Event(str(name), _attributes(attrs), int(stamp)) for name, stamp, attrs in message["events"]
            ],
            links=[
                Link(SpanContext(int(tid), int(sid), False, TraceFlags(int(fl))), _attributes(attrs))
                for tid, sid, fl, attrs in message["links"]
            ],
            kind=SpanKind(int(message["kind"])),
            status=Status(StatusCode(int(status_code)), description),
            start_time=int(message["start"]),
            end_time=int(message["end"]),
            instrumentation_scope=InstrumentationScope(str(scope_name), scope_version),
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"a span message is malformed: {type(exc).__name__}: {exc}"
        raise IsolationError(msg) from exc


def log_message(record: ReadWriteLogRecord) -> Message:
    """A log record as a plain object (its scope is the logger it was emitted on)."""
    log = record.log_record
    scope = record.instrumentation_scope
    body = log.body
    return {
        "op": "log",
        "scope": scope.name if scope else "",
        "timestamp": log.timestamp,
        "observed": log.observed_timestamp,
        "trace_id": log.trace_id or 0,
        "span_id": log.span_id or 0,
        "flags": int(log.trace_flags or 0),
        "severity_text": log.severity_text,
        "severity_number": log.severity_number.value if log.severity_number is not None else None,
        "body": body if body is None or isinstance(body, str | int | float | bool) else str(body),
        "attributes": dict(log.attributes or {}),
    }


def _attributes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        msg = f"attributes must be an object, got {type(raw).__name__}"
        raise TypeError(msg)
    return {str(key): tuple(value) if isinstance(value, list) else value for key, value in raw.items()}


def attribute_values(raw: Any) -> dict[str, Any]:
    """Attributes received in a message, sequences as tuples (what the SDK keeps)."""
    return _attributes(raw) if isinstance(raw, dict) else {}
