"""Which tracer and logger providers an executor uses, and how to build SDK ones."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_flash.config import FlashConfig
from otel_flash.exceptions import ConfigError


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The providers an executor emits into; ``owned`` ones are shut down with it."""

    tracer_provider: trace.TracerProvider
    logger_provider: LoggerProvider
    owned: bool

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush spans and log records that batch processors still hold."""
        ok = True
        flush = getattr(self.tracer_provider, "force_flush", None)
        if callable(flush):
            ok = bool(flush(timeout_millis)) and ok
        return self.logger_provider.force_flush(timeout_millis) and ok

    def shutdown(self) -> None:
        """Flush, then shut down the providers if this executor built them."""
        self.force_flush()
        if self.owned:
            shutdown = getattr(self.tracer_provider, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.logger_provider.shutdown()


def build_resource(config: FlashConfig) -> Resource:
    """``service.name`` from the config, plus its resource attributes."""
    attributes: dict[str, str] = {"service.name": config.service_name, **config.resource_attributes}
    attributes["service.name"] = config.service_name
    return Resource.create(attributes)


def build_providers(config: FlashConfig) -> Telemetry:
    """Fresh SDK providers for ``config``, not installed globally."""
    resource = build_resource(config)
    return Telemetry(
        tracer_provider=TracerProvider(resource=resource, shutdown_on_exit=False),
        logger_provider=LoggerProvider(resource=resource, shutdown_on_exit=False),
        owned=True,
    )


def configure_telemetry(config: FlashConfig | None = None) -> Telemetry:
    """Build SDK providers, install them as the OTel global providers and return them.

    Call once at worker start-up; executors created afterwards use them.
    """
    telemetry = build_providers(config or FlashConfig.from_env())
    trace.set_tracer_provider(telemetry.tracer_provider)
    set_logger_provider(telemetry.logger_provider)
    return Telemetry(telemetry.tracer_provider, telemetry.logger_provider, owned=False)


def resolve_telemetry(
    config: FlashConfig,
    tracer_provider: trace.TracerProvider | None,
    logger_provider: LoggerProvider | None,
) -> Telemetry:
    """Explicit providers first, then SDK global providers, else fresh ones of our own."""
    if logger_provider is not None and not isinstance(logger_provider, LoggerProvider):
        msg = "logger_provider must be an SDK LoggerProvider (opentelemetry.sdk._logs.LoggerProvider)"
        raise ConfigError(msg)
    global_tracer = trace.get_tracer_provider()
    global_logger = get_logger_provider()
    tracer = tracer_provider or (global_tracer if isinstance(global_tracer, TracerProvider) else None)
    logger = logger_provider or (global_logger if isinstance(global_logger, LoggerProvider) else None)
    if tracer is not None and logger is not None:
        return Telemetry(tracer, logger, owned=False)
    own = build_providers(config)
    return Telemetry(tracer or own.tracer_provider, logger or own.logger_provider, owned=True)
