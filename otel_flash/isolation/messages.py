"""The messages between the worker, the zygote and a child: ``TypedDict`` s tagged by ``op``.

Worker to zygote: :class:`ForkRequest`; zygote to worker: :data:`ZygoteMessage`
(``ready``, ``forked``, ``exited``), as one datagram each on their SEQPACKET socket.
Worker to child: :data:`WorkerRequest` (``load``, ``call``, ``serialize``), each answered
by one :data:`ChildReply`; meanwhile the child streams ``log``, ``span``, ``write`` and
``part`` messages (:data:`ChildMessage`), as frames of :mod:`otel_flash.isolation.wire`.
What a side receives is a :data:`Frame` until it has checked it: the other side may run
user code.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Frame = dict[str, Any]
"""A decoded frame: a JSON object, not validated yet (read it with ``.get``)."""


class ChildSettings(TypedDict):
    """The executor's settings a zygote starts with (its command line's JSON)."""

    log_level: str
    capture_stdio: bool
    propagate_threads: bool
    memory_limit_mb: int | None
    max_line_bytes: int


class ForkRequest(TypedDict):
    """Worker to zygote, with the child's descriptors (``SCM_RIGHTS``): fork one child."""

    op: Literal["fork"]
    seq: int


class ReadyMessage(TypedDict):
    """Zygote to worker: imported, ready to fork."""

    op: Literal["ready"]
    pid: int


class ForkedMessage(TypedDict):
    """Zygote to worker: the child of fork request ``seq`` (``pid`` 0: it could not fork)."""

    op: Literal["forked"]
    seq: int | None
    pid: int


class ExitedMessage(TypedDict):
    """Zygote to worker: a child was reaped, with its wait status."""

    op: Literal["exited"]
    pid: int
    status: int


ZygoteMessage = ReadyMessage | ForkedMessage | ExitedMessage


class LoadRequest(TypedDict):
    """Worker to child: load the request's target in the worker's environment."""

    op: Literal["load"]
    request: dict[str, Any]
    carrier: dict[str, str]
    sys_path: list[str]
    environ: dict[str, str]
    workspace: str
    modules_path: str | None


class CallRequest(TypedDict):
    """Worker to child: call what was loaded, in the trace context of ``carrier``."""

    op: Literal["call"]
    carrier: dict[str, str]


class SerializeRequest(TypedDict):
    """Worker to child: encode the result."""

    op: Literal["serialize"]
    carrier: dict[str, str]


WorkerRequest = LoadRequest | CallRequest | SerializeRequest


class LoadedReply(TypedDict):
    """Child to worker: loaded; the target's qualified name."""

    op: Literal["loaded"]
    qualname: str


class ReturnedReply(TypedDict):
    """Child to worker: the call returned (its result stays in the child until serialized)."""

    op: Literal["returned"]


class EncodedReply(TypedDict):
    """Child to worker: the result's response fields, or how many ``part`` frames carried them."""

    op: Literal["encoded"]
    fields: NotRequired[dict[str, Any]]
    parts: NotRequired[int]


class ErrorReply(TypedDict):
    """Child to worker: a step failed (the user's exception, or ours)."""

    op: Literal["error"]
    type: str
    message: str
    description: str


ChildReply = LoadedReply | ReturnedReply | EncodedReply | ErrorReply


class PartMessage(TypedDict):
    """Child to worker: a slice of a result too large for one frame."""

    op: Literal["part"]
    text: str


class WriteMessage(TypedDict):
    """Child to worker: a write to ``sys.stdout``/``sys.stderr``, with the span it was made in."""

    op: Literal["write"]
    stream: str
    text: str
    trace_id: int
    span_id: int
    flags: int


class SpanMessage(TypedDict):
    """Child to worker: a finished span (:func:`span_message`)."""

    op: Literal["span"]
    name: str
    trace_id: int
    span_id: int
    flags: int
    parent: list[int] | None
    kind: int
    start: int | None
    end: int | None
    attributes: dict[str, Any]
    events: list[list[Any]]
    links: list[list[Any]]
    status: list[Any]
    scope: list[Any]


class LogMessage(TypedDict):
    """Child to worker: a log record (:func:`log_message`)."""

    op: Literal["log"]
    scope: str
    timestamp: int | None
    observed: int | None
    trace_id: int
    span_id: int
    flags: int
    severity_text: str | None
    severity_number: int | None
    body: Any
    attributes: dict[str, Any]


ChildMessage = ChildReply | PartMessage | WriteMessage | SpanMessage | LogMessage
