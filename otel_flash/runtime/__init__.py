"""Loading and calling user code, for the executor and for the function processes (internal).

Modules: ``source`` (request code into a callable), ``targets`` (what a request calls),
``instances`` (kept class instances), ``serialization`` (arguments in, results out),
``failures`` (how a failure is told), ``workspace`` (an execution's working directory),
``modules`` (a request's own source files), ``interpreter`` (thread-mode state put back),
``calls`` (blocking steps performed within their limits), ``workers`` (the execution threads).
"""

from otel_flash.runtime.calls import Call, CallRunner, Outcome
from otel_flash.runtime.failures import describe_error, exception_message, record_failure
from otel_flash.runtime.instances import Instance, InstanceRegistry
from otel_flash.runtime.interpreter import InterpreterState, Snapshot
from otel_flash.runtime.modules import (
    MODULES_PHASE,
    ModuleFiles,
    ModuleImports,
    module_names,
    refuse_shadowing,
    validate_modules,
)
from otel_flash.runtime.serialization import (
    decode_value,
    encode_result,
    encode_value,
    json_bytes,
    valid_unicode,
)
from otel_flash.runtime.source import CodeCache
from otel_flash.runtime.targets import Target, TargetLoader, with_deployed_code
from otel_flash.runtime.workers import observe_abandoned_threads
from otel_flash.runtime.workspace import Workspace, bind_workspace, current_workspace

__all__ = [
    "MODULES_PHASE",
    "Call",
    "CallRunner",
    "CodeCache",
    "Instance",
    "InstanceRegistry",
    "InterpreterState",
    "ModuleFiles",
    "ModuleImports",
    "Outcome",
    "Snapshot",
    "Target",
    "TargetLoader",
    "Workspace",
    "bind_workspace",
    "current_workspace",
    "decode_value",
    "describe_error",
    "encode_result",
    "encode_value",
    "exception_message",
    "json_bytes",
    "module_names",
    "observe_abandoned_threads",
    "record_failure",
    "refuse_shadowing",
    "valid_unicode",
    "validate_modules",
    "with_deployed_code",
]
