"""The HTTP worker: a FastAPI app that runs :class:`FunctionRequest` s on one executor.

Routes:
    ``POST /execute``: a ``FunctionRequest`` (or RunPod's ``{"input": {...}}``
    envelope, answered as ``{"output": ...}``) in, the ``FunctionResponse`` out.
    ``POST /execute/stream``: the same request, answered as NDJSON (see
    :mod:`otel_flash.streaming`): ``{"type": "log", ...}`` per captured line as it
    is emitted, then ``{"type": "response", ...}``.
    ``GET /ping``: ``{"status": "healthy"}``; answered while sync user code runs,
    because that code runs in the executor's worker threads.

Status codes: 200 for every execution, successful or not (``success`` says
which); 400 for a body that is not JSON; 413 for a body over the size limit;
422 for JSON that is not a request at all (runpod-flash's own model refuses it
too; a request it accepts but we cannot run gets 200 with ``success: false``). A
W3C ``traceparent`` (with ``tracestate`` and ``baggage``) header continues the
caller's trace unless the request carries its own ``trace_context``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace
from opentelemetry.trace import format_trace_id

from otel_flash import __version__
from otel_flash.config import FlashConfig
from otel_flash.exceptions import ConfigError, RequestError
from otel_flash.executor import RemoteExecutor
from otel_flash.protocol import FunctionRequest, parse_request, reference_accepts, unwrap_envelope
from otel_flash.streaming import NDJSON_MEDIA_TYPE, ExecutionStreams, StreamEvent, event_json

_log = logging.getLogger("flash.server")
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
JOB_ID_ATTRIBUTE = "flash.job_id"
REQUEST_ID_ATTRIBUTE = "flash.request_id"


@dataclass(frozen=True, slots=True)
class _Job:
    """One validated HTTP request: what to run, how to answer, what to record on the root span."""

    request: FunctionRequest | Mapping[str, Any]  # a mapping: model-valid, answered success false
    enveloped: bool
    attributes: Mapping[str, str]


class _Worker:
    """State of one app: the executor (owned or injected), its streams, the body limit."""

    def __init__(
        self,
        config: FlashConfig,
        executor: RemoteExecutor | None,
        max_body_bytes: int,
        console_log: bool,
        shutdown_timeout_s: float,
    ) -> None:
        self.config = config
        self.max_body_bytes = max_body_bytes
        self._executor = executor
        self._owned = executor is None
        self._console_log = console_log
        self._shutdown_timeout_s = shutdown_timeout_s
        self._streams: ExecutionStreams | None = None

    @property
    def executor(self) -> RemoteExecutor:
        if self._executor is None:
            msg = "the worker's executor is created when the app starts (ASGI lifespan)"
            raise RuntimeError(msg)
        return self._executor

    @property
    def streams(self) -> ExecutionStreams:
        if self._streams is None:
            self._streams = ExecutionStreams(self.executor)
        return self._streams

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Create the executor (unless injected) at start-up; drain, flush and close at shutdown."""
        if self._executor is None:
            self._executor = RemoteExecutor(self.config)
        console = _ConsoleHandler(self._executor, self.config) if self._console_log else None
        _log.info("otel-flash worker %s ready", __version__)
        try:
            yield
        finally:
            await self._close(console)

    async def _close(self, console: _ConsoleHandler | None) -> None:
        left = await self.streams.drain(self._shutdown_timeout_s)
        if left:
            _log.warning("shutting down with %d streamed execution(s) still running", left)
        _log.info("otel-flash worker stopping: flushing telemetry")
        if self._owned:
            await asyncio.to_thread(self.executor.shutdown)
        else:
            await asyncio.to_thread(self.executor.force_flush)
        if console is not None:
            console.remove()

    async def execute(self, request: Request) -> JSONResponse:
        """``POST /execute``."""
        job = await self._job(request)
        response = await self.executor.execute(job.request, attributes=job.attributes)
        body = response.model_dump(mode="json")
        return JSONResponse({"output": body} if job.enveloped else body)

    async def execute_stream(self, request: Request) -> StreamingResponse:
        """``POST /execute/stream``."""
        job = await self._job(request)
        events = self.streams.stream(job.request, attributes=job.attributes)
        return StreamingResponse(
            _ndjson(events),
            media_type=NDJSON_MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _job(self, request: Request) -> _Job:
        payload = _decode(await _read_body(request, self.max_body_bytes))
        inner = unwrap_envelope(payload)
        parsed: FunctionRequest | Mapping[str, Any]
        try:
            parsed = parse_request(inner)
        except RequestError as exc:
            if not reference_accepts(inner):  # runpod-flash's model would refuse it too
                raise HTTPException(422, str(exc)) from exc
            parsed = inner  # the executor answers it 200, success false, with the reason
        carrier = {name: request.headers[name] for name in _TRACE_HEADERS if name in request.headers}
        # A server span the framework already opened from these headers (FastAPI's own OTel
        # tracing) is the better parent: flash.execute then nests under it.
        own = parsed.trace_context if isinstance(parsed, FunctionRequest) else parsed.get("trace_context")
        if carrier and not own and not _in_server_span(carrier):
            parsed = _with_carrier(parsed, carrier)
        attributes: dict[str, str] = {}
        if inner is not payload and isinstance(payload.get("id"), str):
            attributes[JOB_ID_ATTRIBUTE] = payload["id"]
        if "x-request-id" in request.headers:
            attributes[REQUEST_ID_ATTRIBUTE] = request.headers["x-request-id"]
        return _Job(parsed, inner is not payload, attributes)


def _with_carrier(
    request: FunctionRequest | Mapping[str, Any], carrier: dict[str, str]
) -> FunctionRequest | Mapping[str, Any]:
    if isinstance(request, FunctionRequest):
        return request.model_copy(update={"trace_context": carrier})
    return {**request, "trace_context": carrier}


def _in_server_span(carrier: dict[str, str]) -> bool:
    """True when the current span already continues the trace the headers name."""
    current = trace.get_current_span().get_span_context()
    return current.is_valid and format_trace_id(current.trace_id) in carrier.get("traceparent", "")


class _ConsoleHandler(logging.Handler):
    """Prints the worker's own ``flash.*`` lines on the real stderr, outside executions only.

    Lines logged inside an execution are already in its response and exported
    with it; printing them here too would show them twice in the worker's log.
    """

    def __init__(self, executor: RemoteExecutor, config: FlashConfig) -> None:
        super().__init__(logging.getLevelNamesMapping()[config.log_level])
        self._executor = executor
        self._stream = sys.__stderr__
        self.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s"))
        logging.getLogger("flash").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self._stream is None or self._executor.in_execution():
            return
        try:
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def remove(self) -> None:
        logging.getLogger("flash").removeHandler(self)


def create_app(
    executor: RemoteExecutor | None = None,
    *,
    config: FlashConfig | None = None,
    max_body_bytes: int | None = None,
    console_log: bool = False,
    shutdown_timeout_s: float = 30.0,
) -> FastAPI:
    """The worker app.

    Args:
        executor: run requests on this executor; the app flushes it at shutdown and
            leaves closing it to the caller. Without one, the app creates its own from
            ``config`` when it starts and shuts it down (flushing telemetry) when it stops.
        config: settings for the app's own executor (default :meth:`FlashConfig.from_env`).
        max_body_bytes: larger bodies get 413 (default ``config.max_request_bytes``).
        console_log: print the worker's own ``flash.*`` log lines (those outside
            executions) on stderr; ``otel-flash serve`` turns it on.
        shutdown_timeout_s: how long shutdown waits for streamed executions whose
            client went away.
    """
    settings = executor.config if executor is not None else config or FlashConfig.from_env()
    limit = settings.max_request_bytes if max_body_bytes is None else max_body_bytes
    if limit < 1:
        msg = f"max_body_bytes must be at least 1, got {limit!r}"
        raise ConfigError(msg)
    worker = _Worker(settings, executor, limit, console_log, shutdown_timeout_s)
    app = FastAPI(title="otel-flash worker", version=__version__, lifespan=worker.lifespan)
    app.add_api_route("/ping", _ping, methods=["GET"], summary="Health check")
    app.add_api_route("/execute", worker.execute, methods=["POST"], summary="Run one FunctionRequest")
    app.add_api_route(
        "/execute/stream",
        worker.execute_stream,
        methods=["POST"],
        summary="Run one FunctionRequest, streaming its log lines as NDJSON",
    )
    return app


async def _ping() -> dict[str, str]:
    return {"status": "healthy"}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body is over the limit of {limit} bytes")
    return bytes(body)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"malformed JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise HTTPException(422, f"request must be a JSON object, got {type(payload).__name__}")
    return payload


async def _ndjson(events: AsyncGenerator[StreamEvent, None]) -> AsyncIterator[str]:
    async with aclosing(events):
        try:
            async for event in events:
                yield event_json(event)
        except asyncio.CancelledError:
            _log.info("a stream's client went away; its execution runs on, its lines are dropped")
            raise
