"""The phases of one request, as the steps of generators: setting it up, then its target's.

:class:`RequestPipeline` holds what the phases use (the configuration, the installer,
the target loader, module imports, process isolation, the interpreter's state, the
redactor). The executor drives :meth:`RequestPipeline.outcome` (setting up, then the
target, or the failure's fields), performing each blocking step it yields (a
:class:`~otel_flash.runtime.Call`) with its limits; each phase is a
:class:`~otel_flash._phases.Phase` (its span and its timing). Also here: the caller's
trace context of a request (:func:`caller_context`) and what the metrics of an
execution are made of (:func:`execution_facts`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_flash._phases import Phase, RunState
from otel_flash._runners import ProcessRunner, Runner, ThreadRunner
from otel_flash.capture import CapturedLog
from otel_flash.config import FlashConfig
from otel_flash.dependencies import DependencyInstaller
from otel_flash.isolation import ProcessIsolation
from otel_flash.protocol import FunctionRequest, parse_request, unwrap_envelope
from otel_flash.redaction import Redactor
from otel_flash.runtime import (
    MODULES_PHASE,
    InterpreterState,
    ModuleFiles,
    ModuleImports,
    Snapshot,
    TargetLoader,
    describe_error,
    record_failure,
    validate_modules,
    with_deployed_code,
)
from otel_flash.runtime import Call as _Call
from otel_flash.semconv import (
    CODE_FUNCTION_NAME,
    DEPENDENCIES_PYTHON_SPAN,
    DEPENDENCIES_SYSTEM_SPAN,
    EXECUTION_TYPE,
    FUNCTION_CALL_SPAN,
    FUNCTION_LOAD_SPAN,
    INSTANCE_ID,
    MODULES_COUNT,
    RESULT_SERIALIZE_SPAN,
    WORKSPACE_PATH,
    WORKSPACE_SETUP_SPAN,
)
from otel_flash.telemetry import ExecutionFacts, extract_context

RequestLike = FunctionRequest | Mapping[str, Any]
_log = logging.getLogger("flash.executor")  # its lines are the executor's


class RequestPipeline:
    """The phases every request goes through, over the executor's collaborators."""

    def __init__(
        self,
        config: FlashConfig,
        dependencies: DependencyInstaller,
        targets: TargetLoader,
        imports: ModuleImports,
        isolation: ProcessIsolation | None,
        interpreter: InterpreterState,
        redact: Redactor,
    ) -> None:
        self._config = config
        self._dependencies = dependencies
        self._targets = targets
        self._imports = imports
        self._isolation = isolation
        self._interpreter = interpreter
        self._redact = redact

    def outcome(
        self,
        payload: RequestLike,
        root: trace.Span,
        state: RunState,
        before: Snapshot,
        restored: list[str],
    ) -> Generator[_Call, Any, dict[str, Any]]:
        """The phases' response fields, or those of their failure.

        What user code did to the interpreter is undone first (into ``restored``): a log
        record factory that raises must be gone before otel_flash logs anything. The
        pipeline never runs on an event loop, so a ``CancelledError`` comes from user code
        and is a failure like any other.
        """
        try:
            try:
                runner, files = yield from self.setup(payload, state)
                return (yield from self.target(runner, state, files))
            finally:
                restored += self._interpreter.restore(before)
        except GeneratorExit:
            raise
        except BaseException as exc:
            record_failure(root, exc, self._redact, event=state.failed_phase is None)
            _log.error("execution failed: %s: %s", type(exc).__name__, exc)
            return {"success": False, "error": self._redact(describe_error(exc))}

    def setup(
        self, payload: RequestLike, state: RunState
    ) -> Generator[_Call, Any, tuple[Runner, ModuleFiles | None]]:
        """The request parsed, its workspace, dependencies and module files set up; its runner."""
        request = parse_request(payload)
        if request.deployed:
            request = with_deployed_code(request, self._config.functions_module)
        if request.modules:
            validate_modules(request.modules, self._config.max_modules, self._config.max_modules_bytes)
        attributes = state.root_attributes
        attributes[EXECUTION_TYPE] = request.execution_type
        if request.instance_id:
            attributes[INSTANCE_ID] = request.instance_id
        workspace = state.workspace
        installs = bool(request.system_dependencies or request.dependencies)
        if installs or workspace.persistent:  # else made on first use
            with self._phase(WORKSPACE_SETUP_SPAN, state) as span:
                path = yield _Call(workspace.path)
                span.set_attribute(WORKSPACE_PATH, str(path))
        where = {"cwd": str(workspace.path())} if installs else {}
        if request.system_dependencies:
            with self._phase(DEPENDENCIES_SYSTEM_SPAN, state):
                yield _Call(self._dependencies.install_system, (request.system_dependencies,), where)
        if request.dependencies:
            with self._phase(DEPENDENCIES_PYTHON_SPAN, state):
                yield _Call(self._dependencies.install_python, (request.dependencies,), where)
        limit = self._time_limit(request)
        files = (yield from self._module_files(request, state)) if request.modules else None
        try:
            return self._runner(request, state, limit, files), files
        except BaseException:
            if files is not None:
                files.close()
            raise

    def _runner(
        self, request: FunctionRequest, state: RunState, limit: float | None, files: ModuleFiles | None
    ) -> Runner:
        """Where the target runs: in this process, or in a function process (its session)."""
        if self._isolation is None:
            return ThreadRunner(self._targets, request, state, limit)
        modules_path = str(files.path) if files is not None else None
        return ProcessRunner(self._isolation.session(request, limit, state.workspace, modules_path))

    def _module_files(self, request: FunctionRequest, state: RunState) -> Generator[_Call, Any, ModuleFiles]:
        """The request's ``modules`` (validated already) written to a directory."""
        with self._phase(MODULES_PHASE, state) as span:
            span.set_attribute(MODULES_COUNT, len(request.modules))
            files: ModuleFiles = yield _Call(ModuleFiles, (request.modules,))
        return files

    def target(
        self, runner: Runner, state: RunState, files: ModuleFiles | None
    ) -> Generator[_Call, Any, dict[str, Any]]:
        """Load, call and serialize the target (either isolation mode), then finish the runner.

        One generator over both modes, driven after :meth:`setup` returns (not from it):
        every step of every request passes through each generator layer. ``files`` are
        importable meanwhile in thread mode, and removed at the end.
        """
        try:
            with self._imports.active(files if self._isolation is None else None):
                try:
                    with self._phase(FUNCTION_LOAD_SPAN, state):
                        qualname = runner.loaded((yield runner.load()))
                    state.root_attributes[CODE_FUNCTION_NAME] = qualname
                    with self._phase(FUNCTION_CALL_SPAN, state, {CODE_FUNCTION_NAME: qualname}):
                        runner.called((yield runner.call()))
                    with self._phase(RESULT_SERIALIZE_SPAN, state):
                        encoded = runner.serialize()
                        if isinstance(encoded, _Call):
                            encoded = yield encoded
                except GeneratorExit:
                    runner.abort()
                    raise
                except BaseException:
                    if (finish := runner.finish()) is not None:
                        yield finish
                    raise
                if (finish := runner.finish()) is not None:
                    yield finish
                return {"success": True, **encoded}
        finally:
            if files is not None:
                files.close()

    def _time_limit(self, request: FunctionRequest) -> float | None:
        """The request's limit, else the configured one; capped by ``max_timeout_s``."""
        limit = request.timeout_s or self._config.timeout_s
        cap = self._config.max_timeout_s
        return cap if cap is not None and (limit is None or limit > cap) else limit

    def _phase(self, name: str, state: RunState, attributes: Mapping[str, str] | None = None) -> Phase:
        return Phase(name, state, attributes, self._redact)


def _carrier_of(payload: RequestLike) -> Mapping[str, str] | None:
    """The W3C carrier of a request not parsed yet (its envelope unwrapped as parsing will)."""
    if isinstance(payload, FunctionRequest):
        return payload.trace_context
    if not isinstance(payload, Mapping):
        return None
    carrier = unwrap_envelope(payload).get("trace_context")
    return carrier if isinstance(carrier, Mapping) else None


def caller_context(payload: RequestLike, headers: Mapping[str, str] | None) -> otel_context.Context | None:
    """The caller's context: the request's ``trace_context``, else the transport's trace headers."""
    carrier = _carrier_of(payload)
    if carrier:
        return extract_context(carrier)
    return extract_context(headers, origin="traceparent header") if headers else None


def execution_facts(
    root: trace.Span, state: RunState, success: bool, total_ms: float, captured: CapturedLog
) -> ExecutionFacts:
    """What the metrics of one execution are made of: timings and counts already at hand."""
    execution_type = state.root_attributes.get(EXECUTION_TYPE, "unknown")
    return tuple.__new__(  # the NamedTuple's own __new__ is a Python call, 3x the cost of this
        ExecutionFacts,
        (
            root.get_span_context(),
            success,
            execution_type,
            state.phases_ms,
            state.failed_phase,
            total_ms,
            captured.total_lines,
            captured.omitted_lines,
            captured.omitted_bytes,
            state.installs or (),  # kept until the next fold: an empty list would be one more tracked object
        ),
    )
