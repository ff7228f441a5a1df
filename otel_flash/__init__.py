"""otel_flash: run remote function calls with every moment observable through OpenTelemetry."""

from otel_flash.config import FlashConfig
from otel_flash.exceptions import (
    ConfigError,
    DependencyError,
    ExecutionTimeout,
    FlashError,
    IsolationError,
    LoadError,
    RemoteError,
    RequestError,
    SerializationError,
    WorkerSaturated,
)
from otel_flash.executor import RemoteExecutor
from otel_flash.export_settings import ExportSettings
from otel_flash.protocol import FunctionRequest, FunctionResponse, parse_request
from otel_flash.runtime import current_workspace
from otel_flash.telemetry import Telemetry, configure_telemetry

__all__ = [
    "ConfigError",
    "DependencyError",
    "ExecutionTimeout",
    "ExportSettings",
    "FlashConfig",
    "FlashError",
    "FunctionRequest",
    "FunctionResponse",
    "IsolationError",
    "LoadError",
    "RemoteError",
    "RemoteExecutor",
    "RequestError",
    "SerializationError",
    "Telemetry",
    "WorkerSaturated",
    "__version__",
    "configure_telemetry",
    "current_workspace",
    "parse_request",
]

__version__ = "0.1.0"
