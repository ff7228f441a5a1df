"""``RemoteExecutor``: runs a request as traced phases and captures its log into the response.

One pipeline (:meth:`RemoteExecutor._run`, over the request's phases in
:mod:`otel_flash._pipeline`) serves both entry points. It is a generator that yields
every blocking step (installs, loading user code, the user call) as a :class:`_Call`,
performed by a :class:`CallRunner`. :meth:`execute_sync`
drives it in the calling thread; :meth:`execute` hands that same drive to one worker
thread and awaits it (one hand-off per execution), so user code, coroutines
included, never runs on the caller's event loop and there is one copy of the logic.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Generator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_flash._internal import SdkDiagnostics
from otel_flash._phases import RunState
from otel_flash._pipeline import RequestLike, RequestPipeline, caller_context, execution_facts
from otel_flash.capture import (
    CapturedLog,
    CaptureProcessor,
    ExecutionLog,
    LineEcho,
    LineRenderer,
    LineSink,
    LineSubscriber,
    LogBridge,
    StdioRouting,
    report_line,
)
from otel_flash.config import FlashConfig
from otel_flash.dependencies import DependencyInstaller
from otel_flash.exceptions import WorkerShuttingDown
from otel_flash.isolation import ProcessIsolation
from otel_flash.protocol import FunctionResponse
from otel_flash.redaction import Redactor
from otel_flash.runtime import Call as _Call
from otel_flash.runtime import (
    CallRunner,
    CodeCache,
    InstanceRegistry,
    InterpreterState,
    ModuleImports,
    Outcome,
    Snapshot,
    TargetLoader,
    Workspace,
    bind_workspace,
    interpreter,
    observe_abandoned_threads,
)
from otel_flash.semconv import (
    EXECUTE_SPAN,
    FAAS_COLDSTART,
    FAAS_TRIGGER,
    LOG_LINES,
    LOG_OMITTED_BYTES,
    LOG_OMITTED_LINES,
    SUCCESS,
)
from otel_flash.telemetry import (
    ColdStart,
    LightTracer,
    Telemetry,
    format_trace_id,
    light_tracer,
    records_observed,
    resolve_telemetry,
    spans_observed,
    threads,
    unobserved_span,
)

__all__ = ["RemoteExecutor", "RequestLike"]

_log = logging.getLogger("flash.executor")
_LoggingSnapshot = tuple[tuple[logging.Handler, ...], int]


class RemoteExecutor:
    """Runs :class:`FunctionRequest` s, each as a ``flash.execute`` trace with its log captured.

    Without arguments it builds its own SDK providers (or uses SDK global providers if
    the host configured them) and reads :meth:`FlashConfig.from_env`. Execution metrics
    go to ``meter_provider`` (else an SDK global one, else one built when metrics are
    exported). One executor
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
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.config = config if config is not None else FlashConfig.from_env()
        self._telemetry = resolve_telemetry(self.config, tracer_provider, logger_provider, meter_provider)
        self._metrics = self._telemetry.metrics
        self._light: LightTracer | None = None
        provider = self._telemetry.logger_provider
        self._tracer = self._telemetry.tracer_provider.get_tracer("otel_flash")
        level = logging.getLevelNamesMapping()[self.config.log_level]
        self._capture = CaptureProcessor(LineRenderer(debug=level <= logging.DEBUG))
        provider.add_log_record_processor(self._capture)
        self._redact = Redactor(self.config.secret_values)
        self._lines = LineSink(provider.get_logger("flash.stdio"), self._redact, self._records_wanted)
        self._bridge = LogBridge(provider, level, self._redact)
        self._bridge.handler.addFilter(SdkDiagnostics())
        self._stdio = StdioRouting(self._capture.current, self._lines) if self.config.capture_stdio else None
        if self.config.propagate_threads:
            threads.acquire()
        self._instances = InstanceRegistry(self.config.max_instances)
        self._targets = TargetLoader(CodeCache(), self._instances)
        self._imports = ModuleImports()
        self._coldstart = ColdStart()
        self._echo = LineEcho() if self.config.echo_lines == "on" else None
        self._dependencies = DependencyInstaller(self.config)
        self._calls = CallRunner(self.config.max_workers)
        self._interpreter = InterpreterState()
        interpreter.install(self.in_execution)
        observe_abandoned_threads(self._telemetry.meter_provider, self._calls.capacity)
        self._isolation = (
            ProcessIsolation(
                self.config,
                self._telemetry.tracer_provider,
                provider,
                self._capture.current,
                self._redact,
                self._lines,
            )
            if self.config.isolation == "process"
            else None
        )
        self._pipeline = RequestPipeline(
            self.config,
            self._dependencies,
            self._targets,
            self._imports,
            self._isolation,
            self._interpreter,
            self._redact,
        )
        self._closed = False

    @property
    def telemetry(self) -> Telemetry:
        """The providers this executor emits into, and the delivery ledgers of those it built."""
        return self._telemetry

    @property
    def instances(self) -> InstanceRegistry:
        """The class instances kept across requests."""
        return self._instances

    @property
    def abandoned_threads(self) -> int:
        """Threads still running user code past its time limit; they count against ``max_workers``."""
        return self._calls.capacity.abandoned

    def execute_sync(
        self,
        request: RequestLike,
        *,
        on_line: LineSubscriber | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        trace_headers: Mapping[str, str] | None = None,
    ) -> FunctionResponse:
        """Run ``request`` from the calling thread and return its response; never raises for bad input.

        Sync user code runs in the calling thread (in a thread of its own when the request
        has a time limit); a coroutine function runs on an event loop of its own in a thread
        of its own. At the time limit the response says ``timed out after N s`` whatever
        the code does; a thread still running then is abandoned (it runs on, and holds a
        place of ``max_workers`` until it ends).

        ``on_line`` receives each captured line as it is emitted, from the emitting thread
        and under the log's lock: it must be quick and must not log or print.
        ``attributes`` (a job id, say) are set on the ``flash.execute`` span.
        ``trace_headers`` are the W3C headers of the transport that brought the request
        (``traceparent``...): the caller's trace when the request has no ``trace_context``.

        Raises:
            WorkerSaturated: executions running plus abandoned threads fill ``max_workers``,
                or the executor is draining (:meth:`drain`); nothing was started.
        """
        self._calls.capacity.admit()
        try:
            steps = self._run(request, on_line, attributes, trace_headers)
            step = _advance(steps, (None, None))
            while isinstance(step, _Call):
                step = _advance(steps, self._calls.perform(step))
            return step
        finally:
            self._calls.capacity.release()

    async def execute(
        self,
        request: RequestLike,
        *,
        on_line: LineSubscriber | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        trace_headers: Mapping[str, str] | None = None,
    ) -> FunctionResponse:
        """Run ``request`` without ever blocking the event loop; its response.

        The whole execution is handed to one of ``max_workers`` worker threads and runs
        there as :meth:`execute_sync` runs it: no user code (coroutines included) and no
        blocking step runs on the caller's loop. Cancelling the await leaves the
        execution running to its end. An execution still running when :meth:`drain`
        gives up on it is answered ``success: false`` with ``worker shutting down``.
        ``on_line``, ``attributes`` and ``trace_headers`` as for :meth:`execute_sync`.

        Raises:
            WorkerSaturated: as for :meth:`execute_sync`.
        """
        drive = functools.partial(
            self.execute_sync, request, on_line=on_line, attributes=attributes, trace_headers=trace_headers
        )
        try:
            return await self._calls.hand_off(drive)
        except WorkerShuttingDown as exc:  # still stuck in user code when the grace period ended
            return FunctionResponse(success=False, error=str(exc), stdout="")

    def check_capacity(self) -> None:
        """Raise :class:`WorkerSaturated` if an execution started now would be refused."""
        self._calls.capacity.check()

    def drain(self, grace_s: float) -> int:
        """Stop for shutdown: refuse new executions, answer running ones within ``grace_s``.

        Waits up to ``grace_s`` for running executions to end. Those still running are
        then answered ``success: false``, ``worker shutting down``: an execution waiting
        on a timed step answers with its log so far; a caller awaiting :meth:`execute`
        gets that answer even while the user's code is still running (its thread is left
        behind; the worker's threads never hold the process open). Blocks; returns how
        many executions were still running when the grace period ended.
        """
        return self._calls.drain(grace_s)

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Wait until the executor can serve at once (process isolation: its zygote imported)."""
        return self._isolation is None or self._isolation.zygote.wait_ready(timeout_s)

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
        self._calls.shutdown()
        interpreter.uninstall(self.in_execution)
        self._dependencies.close()
        if self._isolation is not None:
            self._isolation.close()
        self._telemetry.shutdown()

    def __enter__(self) -> RemoteExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _run(
        self,
        payload: RequestLike,
        on_line: LineSubscriber | None,
        attributes: Mapping[str, AttributeValue] | None = None,
        trace_headers: Mapping[str, str] | None = None,
    ) -> Generator[_Call, Any, FunctionResponse]:
        started = time.perf_counter_ns()
        cfg = self.config
        log = ExecutionLog(cfg.max_log_lines, cfg.max_log_bytes, cfg.max_line_bytes)
        if on_line is not None:
            log.subscribe(on_line)
        if self._echo is not None:
            log.subscribe(self._echo)
        logging_before, interpreter_before = self._reclaim_process_state()
        restored: list[str] = []
        workspace = Workspace(cfg.workspace_path)
        observed = spans_observed(self._telemetry.tracer_provider)
        tracer = self._execution_tracer() if observed else self._tracer
        state = RunState(workspace=workspace, tracer=tracer, spans_observed=observed)

        def bound(context: otel_context.Context | None) -> otel_context.Context:
            return bind_workspace(workspace, self._capture.bind(log, context))

        own = bound(None)
        token = otel_context.attach(own)  # a bad trace_context warns into this log
        try:
            caller = caller_context(payload, trace_headers)
            parent = own if caller is None else bound(caller)
            coldstart = self._coldstart.take()
            if state.spans_observed:
                facts: dict[str, AttributeValue] = {FAAS_TRIGGER: "other", **(attributes or {})}
                facts[FAAS_COLDSTART] = coldstart
                root = state.tracer.start_span(EXECUTE_SPAN, parent, SpanKind.SERVER, facts)
            else:
                root = unobserved_span(parent)
            root_token = otel_context.attach(trace.set_span_in_context(root, parent))
            try:
                fields = yield from self._pipeline.outcome(payload, root, state, interpreter_before, restored)
                captured = self._finish(log, root, state, fields["success"], logging_before, restored)
            finally:
                otel_context.detach(root_token)
                root.end()
        finally:
            log.close()
            otel_context.detach(token)
            workspace.close()
        fields["trace_id"] = format_trace_id(root)
        if state.instance is not None:
            fields.setdefault("instance_id", state.instance.instance_id)
            fields.setdefault("instance_info", state.instance.info())
        total_ms = (time.perf_counter_ns() - started) / 1e6
        if self._metrics is not None:
            self._metrics.record(execution_facts(root, state, fields["success"], total_ms, captured))
        report = report_line(
            fields["trace_id"],
            total_ms,
            state.phases_ms,
            captured.kept,
            captured.omitted_lines,
            captured.omitted_bytes,
            coldstart,
        )
        # fields are built here, not received: skip validating them again
        return FunctionResponse.model_construct(
            stdout="\n".join([*captured.lines(), report]) + "\n", **fields
        )

    def _records_wanted(self) -> bool:
        """Whether a processor besides the capture consumes log records (an exporter, a test)."""
        return records_observed(self._telemetry.logger_provider, self._capture)

    def _reclaim_process_state(self) -> tuple[_LoggingSnapshot, Snapshot]:
        """Put the bridge and stream routing back if anything displaced them; snapshot the rest."""
        self._bridge.ensure_installed()
        if self._stdio is not None:
            self._stdio.ensure_installed()
        return self._bridge.snapshot(), self._interpreter.snapshot()

    def _finish(
        self,
        log: ExecutionLog,
        root: trace.Span,
        state: RunState,
        success: bool,
        logging_before: _LoggingSnapshot,
        restored: list[str],
    ) -> CapturedLog:
        """Flush partial lines, undo what user code did to the process, close the log."""
        for stream, text in log.drain():
            self._lines.deliver(log, stream, [text])
        for sentence in restored:
            _log.warning(sentence)
        if self._stdio is not None:
            for name in self._stdio.reclaim():
                _log.warning("user code replaced sys.%s; otel_flash restored it", name)
        if self._bridge.restore(logging_before):
            _log.warning("user code reconfigured the root logger; otel_flash restored it")
        captured = log.close()
        root.set_attributes(
            {
                **state.root_attributes,
                SUCCESS: success,
                LOG_LINES: captured.total_lines,
                LOG_OMITTED_LINES: captured.omitted_lines,
                LOG_OMITTED_BYTES: captured.omitted_bytes,
            }
        )
        return captured

    def _execution_tracer(self) -> trace.Tracer:
        """Light spans (:mod:`~otel_flash.telemetry.spans`) when only our queues take spans, else SDK ones."""
        self._light = light_tracer(self._telemetry.tracer_provider, self._light)
        return self._light or self._tracer


def _advance(steps: Generator[_Call, Any, FunctionResponse], outcome: Outcome) -> _Call | FunctionResponse:
    """Hand the last step's outcome to the pipeline; its next step, or its response."""
    value, error = outcome
    try:
        return steps.send(value) if error is None else steps.throw(error)
    except StopIteration as stop:
        response: FunctionResponse = stop.value
        return response
