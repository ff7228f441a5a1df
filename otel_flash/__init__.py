"""otel_flash: run remote function calls with every moment observable through OpenTelemetry."""

from otel_flash.config import FlashConfig
from otel_flash.exceptions import (
    ConfigError,
    DependencyError,
    FlashError,
    LoadError,
    RequestError,
    SerializationError,
)
from otel_flash.executor import RemoteExecutor
from otel_flash.protocol import FunctionRequest, FunctionResponse, parse_request
from otel_flash.telemetry import Telemetry, configure_telemetry
from otel_flash.workspace import current_workspace

__all__ = [
    "ConfigError",
    "DependencyError",
    "FlashConfig",
    "FlashError",
    "FunctionRequest",
    "FunctionResponse",
    "LoadError",
    "RemoteExecutor",
    "RequestError",
    "SerializationError",
    "Telemetry",
    "__version__",
    "configure_telemetry",
    "current_workspace",
    "parse_request",
]

__version__ = "0.1.0"
