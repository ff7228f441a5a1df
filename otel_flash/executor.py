"""``RemoteExecutor``: runs a request as traced phases and captures its log into the response.

One pipeline (:meth:`RemoteExecutor._run`) serves both entry points. It is a
generator that yields every blocking step (installs, loading user code, the user
call) as a :class:`_Call`; :meth:`execute_sync` performs them in the calling
thread, :meth:`execute` in worker threads (or awaits them), so the event loop is
never blocked and there is one copy of the logic.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_flash import threads
from otel_flash.bridge import LogBridge
from otel_flash.capture import CaptureProcessor, ExecutionLog, LineSubscriber
from otel_flash.config import FlashConfig
from otel_flash.dependencies import DependencyInstaller
from otel_flash.exceptions import FlashError, LoadError, RequestError
from otel_flash.instances import Instance, InstanceRegistry
from otel_flash.loader import CodeCache, is_user_filename, load_namespace, resolve, resolve_method
from otel_flash.propagation import extract_context, format_trace_id
from otel_flash.protocol import FunctionRequest, FunctionResponse, parse_request
from otel_flash.render import LineRenderer, report_line
from otel_flash.serialization import decode_arguments, encode_result
from otel_flash.stdio import StdioRouting, emit_stream_line
from otel_flash.telemetry import resolve_telemetry
from otel_flash.workspace import Workspace, bind_workspace

_log = logging.getLogger("flash.executor")
RequestLike = FunctionRequest | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Call:
    """A blocking step of the pipeline, performed by the driver."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] | list[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Target:
    """What the load phase resolved: the callable and its decoded arguments."""

    fn: Callable[..., Any]
    args: list[Any]
    kwargs: dict[str, Any]
    qualname: str
    instance: Instance | None


@dataclass(slots=True)
class _RunState:
    """Facts gathered while one execution runs."""

    phases_ms: dict[str, float] = field(default_factory=dict)
    failed_phase: str | None = None
    instance: Instance | None = None
    workspace: Workspace | None = None


class RemoteExecutor:
    """Runs :class:`FunctionRequest` s, each as a ``flash.execute`` trace with its log captured.

    Without arguments it builds its own SDK providers (or uses SDK global providers if
    the host configured them) and reads :meth:`FlashConfig.from_env`. One executor
    serves many requests at once, from threads and from asyncio tasks. Call
    :meth:`shutdown` (or use it as a context manager) to remove its logging bridge and
    stream routing and flush telemetry.
    """

    def __init__(
        self,
        config: FlashConfig | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        self.config = config if config is not None else FlashConfig.from_env()
        self._telemetry = resolve_telemetry(self.config, tracer_provider, logger_provider)
        provider = self._telemetry.logger_provider
        self._tracer = self._telemetry.tracer_provider.get_tracer("otel_flash")
        level = logging.getLevelNamesMapping()[self.config.log_level]
        self._capture = CaptureProcessor(LineRenderer(debug=level <= logging.DEBUG))
        provider.add_log_record_processor(self._capture)
        self._stdio_logger = provider.get_logger("flash.stdio")
        self._bridge = LogBridge(provider, level)
        self._stdio = (
            StdioRouting(self._capture.current, self._stdio_logger) if self.config.capture_stdio else None
        )
        if self.config.propagate_threads:
            threads.acquire()
        self._instances = InstanceRegistry(self.config.max_instances)
        self._code = CodeCache()
        self._dependencies = DependencyInstaller(self.config)
        self._pool = ThreadPoolExecutor(self.config.max_workers, thread_name_prefix="flash-call")
        self._closed = False

    @property
    def instances(self) -> InstanceRegistry:
        """The class instances kept across requests."""
        return self._instances

    def execute_sync(
        self,
        request: RequestLike,
        *,
        on_line: LineSubscriber | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> FunctionResponse:
        """Run ``request`` in the calling thread and return its response; never raises for bad input.

        ``on_line`` receives each captured line as it is emitted, from the emitting thread
        and under the log's lock: it must be quick and must not log or print.
        ``attributes`` (a job id, say) are set on the ``flash.execute`` span.
        """
        steps = self._run(request, on_line, attributes)
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                call = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                response: FunctionResponse = stop.value
                return response
            value, error = _perform_sync(call)

    async def execute(
        self,
        request: RequestLike,
        *,
        on_line: LineSubscriber | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> FunctionResponse:
        """Run ``request`` without blocking the event loop; sync user code runs in a worker thread.

        ``on_line`` and ``attributes`` as for :meth:`execute_sync`.
        """
        steps = self._run(request, on_line, attributes)
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                call = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                response: FunctionResponse = stop.value
                return response
            value, error = await self._perform_async(call)

    def in_execution(self) -> bool:
        """True when called inside one of this executor's executions (its log is bound)."""
        return self._capture.current() is not None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush spans and log records held by batch processors."""
        return self._telemetry.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Remove the bridge and stream routing, flush telemetry; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._stdio is not None:
            self._stdio.uninstall()
        self._bridge.uninstall()
        self._capture.shutdown()
        if self.config.propagate_threads:
            threads.release()
        self._pool.shutdown(wait=False)
        self._dependencies.close()
        self._telemetry.shutdown()

    def __enter__(self) -> RemoteExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    async def _perform_async(self, call: _Call) -> tuple[Any, BaseException | None]:
        try:
            if inspect.iscoroutinefunction(call.fn):
                return await call.fn(*call.args, **call.kwargs), None
            run = functools.partial(contextvars.copy_context().run, call.fn, *call.args, **call.kwargs)
            result = await asyncio.get_running_loop().run_in_executor(self._pool, run)
            if inspect.isawaitable(result):
                result = await result
            return result, None
        except BaseException as exc:  # handed to the pipeline, which decides what it means
            return None, exc

    def _run(
        self,
        payload: RequestLike,
        on_line: LineSubscriber | None,
        attributes: Mapping[str, str] | None = None,
    ) -> Generator[_Call, Any, FunctionResponse]:
        started = time.perf_counter_ns()
        cfg = self.config
        log = ExecutionLog(cfg.max_log_lines, cfg.max_log_bytes, cfg.max_line_bytes)
        if on_line is not None:
            log.subscribe(on_line)
        self._bridge.ensure_installed()
        if self._stdio is not None:
            self._stdio.ensure_installed()
        workspace = Workspace(cfg.workspace_path)
        state = _RunState(workspace=workspace)
        fields: dict[str, Any] = {"success": False}
        # the workspace must be in the attached context: spans inherit the current one
        token = otel_context.attach(bind_workspace(workspace, self._capture.bind(log)))
        try:
            parent = self._capture.bind(log, extract_context(_carrier_of(payload)))
            with self._tracer.start_as_current_span(
                "flash.execute",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as root:
                try:
                    fields = yield from self._phases(payload, root, state)
                except (GeneratorExit, asyncio.CancelledError):
                    raise
                except BaseException as exc:
                    fields = {"success": False, "error": _describe_error(exc)}
                    _record_failure(root, exc, recorded=state.failed_phase is not None)
                    _log.error("execution failed: %s: %s", type(exc).__name__, exc)
                fields["trace_id"] = format_trace_id(root)
                for stream, text in log.drain():
                    emit_stream_line(self._stdio_logger, stream, text)
                captured = log.close()
                root.set_attributes(
                    {
                        "flash.success": bool(fields["success"]),
                        "flash.log.lines": captured.total_lines,
                        "flash.log.omitted_lines": captured.omitted_lines,
                        "flash.log.omitted_bytes": captured.omitted_bytes,
                    }
                )
        finally:
            log.close()
            otel_context.detach(token)
            workspace.close()
        total_ms = (time.perf_counter_ns() - started) / 1e6
        report = report_line(
            fields["trace_id"],
            total_ms,
            state.phases_ms,
            captured.kept,
            captured.omitted_lines,
            captured.omitted_bytes,
        )
        if state.instance is not None:
            fields.setdefault("instance_id", state.instance.instance_id)
            fields.setdefault("instance_info", state.instance.info())
        return FunctionResponse(stdout="\n".join([*captured.lines(), report]) + "\n", **fields)

    def _phases(
        self, payload: RequestLike, root: trace.Span, state: _RunState
    ) -> Generator[_Call, Any, dict[str, Any]]:
        request = parse_request(payload)
        root.set_attribute("flash.execution_type", request.execution_type)
        if request.instance_id:
            root.set_attribute("flash.instance_id", request.instance_id)
        workspace = state.workspace
        installs = bool(request.system_dependencies or request.dependencies)
        if workspace is not None and (installs or workspace.persistent):  # else made on first use
            with self._phase("flash.workspace.setup", state) as span:
                path = yield _Call(workspace.path)
                span.set_attribute("flash.workspace.path", str(path))
        where = {"cwd": str(workspace.path())} if workspace is not None and installs else {}
        if request.system_dependencies:
            with self._phase("flash.dependencies.system", state):
                yield _Call(self._dependencies.install_system, (request.system_dependencies,), where)
        if request.dependencies:
            with self._phase("flash.dependencies.python", state):
                yield _Call(self._dependencies.install_python, (request.dependencies,), where)
        with self._phase("flash.function.load", state):
            target: _Target = yield _Call(self._load, (request,))
        state.instance = target.instance
        root.set_attribute("code.function.name", target.qualname)
        with self._phase("flash.function.call", state, {"code.function.name": target.qualname}):
            result = yield _Call(target.fn, target.args, target.kwargs)
        if target.instance is not None:
            target.instance.record_call()
            root.set_attribute("flash.instance_id", target.instance.instance_id)
        with self._phase("flash.result.serialize", state):
            encoded = encode_result(result, request.serialization_format)
        return {"success": True, **encoded}

    @contextmanager
    def _phase(
        self, name: str, state: _RunState, attributes: Mapping[str, str] | None = None
    ) -> Iterator[trace.Span]:
        started = time.perf_counter_ns()
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except BaseException as exc:
                state.failed_phase = name
                _record_failure(span, exc, recorded=False)
                raise
            finally:
                state.phases_ms[name.removeprefix("flash.")] = (time.perf_counter_ns() - started) / 1e6

    def _load(self, request: FunctionRequest) -> _Target:
        fmt = request.serialization_format
        if request.execution_type == "class":
            instance = self._instance_for(request)
            method = resolve_method(instance.obj, request.method_name)
            args, kwargs = decode_arguments(request.args, request.kwargs, fmt)
            return _Target(method, args, kwargs, f"{request.class_name}.{request.method_name}", instance)
        name = request.function_name or ""
        namespace = load_namespace(self._code.compile(request.function_code or "", name))
        function = resolve(namespace, name, "function")
        if not callable(function):
            msg = f"{name!r} is not callable (it is a {type(function).__name__})"
            raise LoadError(msg)
        args, kwargs = decode_arguments(request.args, request.kwargs, fmt)
        return _Target(function, args, kwargs, name, None)

    def _instance_for(self, request: FunctionRequest) -> Instance:
        class_name = request.class_name or ""
        if request.instance_id and not request.create_new_instance:
            existing = self._instances.get(request.instance_id)
            if existing is not None:
                if existing.class_name != class_name:
                    msg = f"instance {request.instance_id!r} is a {existing.class_name}, not a {class_name}"
                    raise RequestError(msg)
                return existing
        namespace = load_namespace(self._code.compile(request.class_code or "", class_name))
        cls = resolve(namespace, class_name, "class")
        args, kwargs = decode_arguments(
            request.constructor_args, request.constructor_kwargs, request.serialization_format, "constructor_"
        )
        return self._instances.add(class_name, cls(*args, **kwargs), request.instance_id)


def _perform_sync(call: _Call) -> tuple[Any, BaseException | None]:
    try:
        result = call.fn(*call.args, **call.kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return result, None
    except BaseException as exc:  # handed to the pipeline, which decides what it means
        return None, exc


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _carrier_of(payload: RequestLike) -> Mapping[str, str] | None:
    if isinstance(payload, FunctionRequest):
        return payload.trace_context
    inner = payload.get("input") if isinstance(payload, Mapping) else None
    source = inner if isinstance(inner, Mapping) and "trace_context" in inner else payload
    carrier = source.get("trace_context") if isinstance(source, Mapping) else None
    return carrier if isinstance(carrier, Mapping) else None


def _record_failure(span: trace.Span, exc: BaseException, *, recorded: bool) -> None:
    if not recorded:
        span.record_exception(exc, escaped=True)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1024]))


def _describe_error(exc: BaseException) -> str:
    """Our own errors by their message; the user's with the traceback of their own code."""
    if isinstance(exc, FlashError) and not _user_frames(exc):
        return str(exc)
    tb = exc.__traceback__
    while tb is not None and not is_user_filename(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:  # raised before the submitted code ran (a bad call signature, say)
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    lines = traceback.format_exception(type(exc), exc, tb)
    return f"{type(exc).__name__}: {exc}\n\n{''.join(lines).rstrip()}"


def _user_frames(exc: BaseException) -> bool:
    cause = exc.__cause__
    tb = cause.__traceback__ if cause is not None else None
    while tb is not None:
        if is_user_filename(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False
