"""The HTTP worker: a FastAPI app that runs :class:`FunctionRequest` s on one executor.

``POST /execute``, the hot path, is a plain ASGI endpoint answered right behind the
:class:`~otel_flash.http.guard.RequestGuard`, before FastAPI's routing, request objects and
dependency machinery (its FastAPI route only documents it and answers other methods 405).

Routes:
    ``POST /execute``: a ``FunctionRequest`` (or RunPod's ``{"input": {...}}``
    envelope, answered as ``{"output": ...}``) in, the ``FunctionResponse`` out.
    ``POST /execute/stream``: the same request, answered as NDJSON (see
    :mod:`otel_flash.streaming`): ``{"type": "log", ...}`` per captured line as it
    is emitted, then ``{"type": "response", ...}``.
    ``GET /ping``: 204 while the worker initialises (executor, providers, zygote),
    then 200 ``{"status": "healthy", "abandoned_threads": N}``; answered while user
    code runs (coroutines included: it runs in the executor's worker threads). It
    makes no traces. ``abandoned_threads`` counts threads still running user code
    past its time limit (they count against ``max_workers``).

Status codes: 200 for every execution, successful or not (``success`` says
which); 400 for a body that is not JSON (or a number too long, nesting too deep; or
whose client went away while sending it);
401 without a valid API key; 408 for a body not received within ``body_timeout_s``;
413 for a body over the size limit; 415 for a body that is not ``application/json``;
421 for a foreign ``Host`` on a loopback bind; 422 for JSON that is not a request at
all (runpod-flash's own model refuses it too; a request it accepts but we cannot run
gets 200 with ``success: false``); 503 while the worker initialises or is over its connection cap (see
:mod:`otel_flash.http.guard` and docs/worker.md), and (JSON ``detail``) when the executor
refuses to start an execution (:class:`WorkerSaturated`: executions running plus
abandoned threads fill ``max_workers``, or the worker is shutting down).

Tracing: the worker's one SERVER span is ``flash.execute``, with the OTel HTTP server
attributes; a W3C ``traceparent`` (with ``tracestate`` and ``baggage``) header makes
the caller's span its parent unless the request carries its own ``trace_context``.
FastAPI's own request tracing is switched off for this app.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from otel_flash import __version__
from otel_flash.config import FlashConfig
from otel_flash.exceptions import ConfigError, WorkerSaturated
from otel_flash.executor import RemoteExecutor
from otel_flash.http import (
    ASGIApp,
    ConsoleHandler,
    HttpJob,
    Receive,
    Refusal,
    RequestGuard,
    Scope,
    Send,
    read_job,
    route_path,
    send_json,
)
from otel_flash.protocol import FunctionResponse
from otel_flash.runtime import json_bytes
from otel_flash.streaming import NDJSON_MEDIA_TYPE, ExecutionStreams, StreamEvent, event_json
from otel_flash.telemetry import worker_init

__all__ = ["EXECUTE_PATH", "PING_PATH", "STREAM_PATH", "ExecutorFactory", "create_app", "drain"]

_log = logging.getLogger("flash.server")
PING_PATH = "/ping"
EXECUTE_PATH = "/execute"
STREAM_PATH = "/execute/stream"
ExecutorFactory = Callable[[FlashConfig], RemoteExecutor]


class FlashJSONResponse(JSONResponse):
    """A JSON response that stays valid whatever its strings hold (lone surrogates included)."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


class _Worker:
    """State of one app: the executor (owned or injected), its readiness, its streams, the limits."""

    def __init__(
        self,
        config: FlashConfig,
        executor: RemoteExecutor | None,
        make_executor: ExecutorFactory,
        max_body_bytes: int,
        console_log: bool,
        shutdown_timeout_s: float,
        own_process: bool = False,
    ) -> None:
        self.config = config
        self._own_process = own_process
        self.max_body_bytes = max_body_bytes
        self._executor = executor
        self._make_executor = make_executor
        self._owned = executor is None
        self._console_log = console_log
        self._shutdown_timeout_s = shutdown_timeout_s
        self._streams: ExecutionStreams | None = None
        self._console: ConsoleHandler | None = None
        self._ready = asyncio.Event()
        self._failure: BaseException | None = None

    @property
    def executor(self) -> RemoteExecutor:
        if self._executor is None or not self._ready.is_set():
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
        """Initialise in the background (``/ping`` answers 204 meanwhile); drain, flush, close at shutdown."""
        self._ready = asyncio.Event()
        starting = asyncio.create_task(self._initialise()) if self._owned else None
        if starting is None:
            self._became_ready()
        try:
            yield
        finally:
            if starting is not None:
                await starting  # init runs in a thread that cannot be interrupted
            await self._close()

    async def _initialise(self) -> None:
        try:
            self._executor = await asyncio.to_thread(self._start_executor)
        except Exception as exc:
            self._failure = exc
            _log.error("otel-flash worker failed to initialise: %s: %s", type(exc).__name__, exc)
            return
        self._became_ready()

    def _start_executor(self) -> RemoteExecutor:
        # serve installs its providers globally before the app starts: start-up is traced there
        with worker_init(trace.get_tracer_provider()):
            executor = self._make_executor(self.config)
            if not executor.wait_ready():
                _log.warning("the executor is not warm yet; the first request waits for it")
        if self._own_process:
            # lives as long as the process: not walked by the full collections export queues trigger
            gc.collect()
            gc.freeze()
        return executor

    def _became_ready(self) -> None:
        if self._console_log and self._executor is not None:
            self._console = ConsoleHandler(self.config.log_level, self._executor.in_execution)
        self._ready.set()
        _log.info("otel-flash worker %s ready", __version__)

    async def _close(self) -> None:
        if not self._ready.is_set():
            return
        left = await self.streams.drain(self._shutdown_timeout_s)
        if left:
            _log.warning("shutting down with %d streamed execution(s) still running", left)
        _log.info("otel-flash worker stopping: flushing telemetry")
        if self._owned:
            await asyncio.to_thread(self.executor.shutdown)
        else:
            await asyncio.to_thread(self.executor.force_flush)
        if self._console is not None:
            self._console.remove()

    async def ping(self) -> Response:
        """``GET /ping``: 204 while initialising, 200 once serving, 503 if initialisation failed.

        It is open without a key, so a failure shows only its error's type here.
        """
        if self._ready.is_set():
            return FlashJSONResponse(self._health())
        if self._failure is not None:
            return FlashJSONResponse({"status": "failed", "error": type(self._failure).__name__}, 503)
        return Response(status_code=204)

    def _health(self) -> dict[str, Any]:
        """The ``/ping`` body of a worker that serves."""
        return {"status": "healthy", "abandoned_threads": self.executor.abandoned_threads}

    def drain(self, grace_s: float) -> int:
        """See :func:`drain`; nothing to do before the executor exists."""
        return self._executor.drain(grace_s) if self._executor is not None else 0

    async def execute(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /execute``, a plain ASGI endpoint: one parse, one validation, one encoding."""
        try:
            job = await self._job(scope, receive, EXECUTE_PATH)
            response = await self.executor.execute(
                job.request, attributes=job.attributes, trace_headers=job.trace_headers
            )
        except Refusal as refusal:
            await refusal.send(send)
            return
        except WorkerSaturated as exc:
            await _saturation(exc).send(send)
            return
        await send_json(send, 200, _response_json(response, job.enveloped))

    async def execute_stream(self, request: Request) -> StreamingResponse:
        """``POST /execute/stream``."""
        job = await self._job(request.scope, request.receive, STREAM_PATH)
        self.executor.check_capacity()  # refused with 503 before the stream starts, not in it
        events = self.streams.stream(job.request, attributes=job.attributes, trace_headers=job.trace_headers)
        return StreamingResponse(
            _ndjson(events),
            media_type=NDJSON_MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _check_serving(self) -> None:
        if self._ready.is_set():
            return
        detail = (
            f"the worker failed to initialise: {self._failure_text()}"
            if self._failure is not None
            else "the worker is still initialising; retry once GET /ping answers 200"
        )
        raise Refusal(503, detail, ((b"retry-after", b"1"),))

    def _failure_text(self) -> str:
        return f"{type(self._failure).__name__}: {self._failure}"

    async def _job(self, scope: Scope, receive: Receive, route: str) -> HttpJob:
        self._check_serving()
        return await read_job(scope, receive, route, self.max_body_bytes, self.config.body_timeout_s)


class _ExecuteRoute:
    """ASGI middleware serving ``POST /execute`` itself; every other request goes on to the app."""

    def __init__(self, app: ASGIApp, *, worker: _Worker) -> None:
        self.app = app
        self._worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and route_path(scope) == EXECUTE_PATH:
            await self._worker.execute(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(
    executor: RemoteExecutor | None = None,
    *,
    config: FlashConfig | None = None,
    max_body_bytes: int | None = None,
    console_log: bool = False,
    shutdown_timeout_s: float = 30.0,
    make_executor: ExecutorFactory = RemoteExecutor,
    own_process: bool = False,
) -> FastAPI:
    """The worker app, behind its :class:`~otel_flash.http.guard.RequestGuard`.

    Args:
        executor: run requests on this executor; the app serves at once, flushes it at
            shutdown and leaves closing it to the caller. Without one, the app builds its
            own with ``make_executor(config)`` in a thread when it starts (``/ping``
            answers 204 meanwhile) and shuts it down (flushing telemetry) when it stops.
        config: settings of the app (API keys, docs, limits) and of its own executor
            (default :meth:`FlashConfig.from_env`).
        max_body_bytes: larger bodies get 413 (default ``config.max_request_bytes``).
        console_log: print the worker's own ``flash.*`` log lines (those outside
            executions) on stderr; ``otel-flash serve`` turns it on.
        shutdown_timeout_s: how long shutdown waits for streamed executions whose
            client went away.
        make_executor: builds the app's own executor from ``config``.
        own_process: the app is the process's reason to exist (``otel-flash serve``): once its
            own executor is ready, what is alive is frozen out of garbage collection (``gc.freeze``).
    """
    settings = executor.config if executor is not None else config or FlashConfig.from_env()
    limit = settings.max_request_bytes if max_body_bytes is None else max_body_bytes
    if limit < 1:
        msg = f"max_body_bytes must be at least 1, got {limit!r}"
        raise ConfigError(msg)
    worker = _Worker(settings, executor, make_executor, limit, console_log, shutdown_timeout_s, own_process)
    docs = settings.http_docs
    app = FastAPI(
        title="otel-flash worker",
        version=__version__,
        lifespan=worker.lifespan,
        default_response_class=FlashJSONResponse,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        **_without_framework_telemetry(),
    )
    app.state.flash_worker = worker
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Refusal, _refused)
    app.add_exception_handler(WorkerSaturated, _saturated)
    app.add_api_route(PING_PATH, worker.ping, methods=["GET"], summary="Health check")
    summary = "Run one FunctionRequest"
    app.add_api_route(EXECUTE_PATH, _served_before_routing, methods=["POST"], summary=summary)
    app.add_api_route(
        STREAM_PATH,
        worker.execute_stream,
        methods=["POST"],
        summary="Run one FunctionRequest, streaming its log lines as NDJSON",
    )
    app.add_middleware(_ExecuteRoute, worker=worker)  # inside the guard: added before it
    app.add_middleware(
        RequestGuard,
        api_keys=settings.api_keys,
        allow_unauthenticated=settings.allow_unauthenticated,
        open_paths=frozenset({PING_PATH}),
        json_paths=frozenset({EXECUTE_PATH, STREAM_PATH}),
    )
    return app


def drain(app: FastAPI, grace_s: float) -> int:
    """Answer the app's running executions within ``grace_s`` (:meth:`RemoteExecutor.drain`).

    Blocks: call it from a thread when the server is told to stop (``otel-flash serve``
    does, on SIGTERM), before the server waits for its open requests. Returns how many
    executions were still running when the grace period ended.
    """
    worker: _Worker = app.state.flash_worker
    return worker.drain(grace_s)


async def _served_before_routing() -> None:
    """``POST /execute`` in the API schema; :class:`_ExecuteRoute` answers it before routing."""
    msg = "POST /execute is answered by _ExecuteRoute, in front of FastAPI's router"
    raise RuntimeError(msg)


def _response_json(response: FunctionResponse, enveloped: bool) -> bytes:
    """The body answering ``response``: its JSON, or ``{"output": ...}`` around it for an envelope."""
    try:
        body = response.model_dump_json().encode()
    except PydanticSerializationError:  # a lone surrogate (from an undecodable file name, say)
        fields = response.model_dump(mode="json")
        return json_bytes({"output": fields} if enveloped else fields)
    return b'{"output":' + body + b"}" if enveloped else body


def _saturation(exc: WorkerSaturated) -> Refusal:
    """``WorkerSaturated`` answers 503 with its message as ``detail``."""
    return Refusal(503, str(exc))


async def _saturated(request: Request, exc: Exception) -> Response:
    """FastAPI's handler of ``WorkerSaturated`` (``/execute/stream``): see :func:`_saturation`."""
    if not isinstance(exc, WorkerSaturated):  # registered for this type only
        raise exc
    return await _refused(request, _saturation(exc))


async def _refused(_request: Request, exc: Exception) -> Response:
    """FastAPI's handler of a :class:`Refusal` (``/execute/stream``): the same answer as ``/execute``'s."""
    if not isinstance(exc, Refusal):  # registered for this type only
        raise exc
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in exc.headers}
    return FlashJSONResponse({"detail": exc.detail}, exc.status, headers=headers)


def _without_framework_telemetry() -> dict[str, Any]:
    """FastAPI (>= 0.165) traces requests itself; ``flash.execute`` is the one SERVER span here."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"telemetry": {**off, "auto_configure": False}}


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Error answers as ``{"detail": ...}``, valid JSON whatever the message holds."""
    if not isinstance(exc, StarletteHTTPException):  # registered for this type only
        raise exc
    return FlashJSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def _ndjson(events: AsyncGenerator[StreamEvent, None]) -> AsyncIterator[str]:
    async with aclosing(events):
        try:
            async for event in events:
                yield event_json(event)
        except asyncio.CancelledError:
            _log.info("a stream's client went away; its execution runs on, its lines are dropped")
            raise
