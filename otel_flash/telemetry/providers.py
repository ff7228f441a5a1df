"""Which tracer, logger and meter providers an executor uses, and how to build SDK ones.

Providers built here get the exporters :class:`~otel_flash.export_settings.ExportSettings`
asks for; when metrics are exported, executions record them through
:class:`~otel_flash.telemetry.metrics.ExecutionMetrics` on the meter provider. Providers a caller passes
in are used as they are: nothing is added to them.
Flushing and shutting down never take longer than ``export.shutdown_timeout_s``,
however unresponsive the collector is.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_flash._internal import internal_logger
from otel_flash.config import FlashConfig
from otel_flash.exceptions import ConfigError
from otel_flash.export_settings import Signal
from otel_flash.redaction import Redactor
from otel_flash.telemetry.delivery import DeliveryLedger
from otel_flash.telemetry.exporters import build_pipeline
from otel_flash.telemetry.metrics import ExecutionMetrics
from otel_flash.telemetry.sdk import enable, new_logger_provider, new_tracer_provider


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The providers an executor emits into.

    Attributes:
        tracer_provider: where spans go.
        logger_provider: where log records go (captured and exported).
        owned: providers built here are shut down by :meth:`shutdown`; those listed
            in ``borrowed`` (or all, when False) are only flushed.
        meter_provider: the metrics of executions, when metrics are exported.
        ledgers: counts of exported and dropped spans and log records.
        shutdown_timeout_s: the longest :meth:`shutdown` may take.
        borrowed: providers given by the caller, never shut down here.
    """

    tracer_provider: trace.TracerProvider
    logger_provider: LoggerProvider
    owned: bool
    meter_provider: MeterProvider | None = None
    ledgers: tuple[DeliveryLedger, ...] = ()
    shutdown_timeout_s: float = 5.0
    borrowed: tuple[object, ...] = ()

    @property
    def metrics(self) -> ExecutionMetrics | None:
        """Where executions record their metrics; None when nothing collects them."""
        return ExecutionMetrics.of(self.meter_provider) if self.meter_provider is not None else None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what batch processors hold; gives up after ``timeout_millis`` (returns False)."""
        actions = [(provider, _flush_action(provider, timeout_millis)) for provider in self._providers()]
        return _run_bounded(actions, timeout_millis / 1000, "flushing telemetry")

    def shutdown(self) -> None:
        """Flush, then shut down the providers built here; bounded by ``shutdown_timeout_s``.

        The limit bounds the whole shutdown of a provider, however many telemetries
        share it: when an earlier flush or shutdown of one of these providers is still
        stuck on the collector, this one waits no later than that one's deadline.
        """
        actions = []
        for provider in self._providers():
            owned = self.owned and not any(provider is other for other in self.borrowed)
            actions.append(
                (provider, _shutdown_action(provider) if owned else _flush_action(provider, 30_000))
            )
        _run_bounded(actions, self.shutdown_timeout_s, "shutting telemetry down")
        for ledger in self.ledgers:
            ledger.report_final()

    def _providers(self) -> list[Any]:
        found: list[Any] = [self.tracer_provider, self.logger_provider]
        return [*found, self.meter_provider] if self.meter_provider is not None else found


def build_resource(config: FlashConfig) -> Resource:
    """``service.name`` from the config, plus its resource attributes."""
    attributes: dict[str, str] = {"service.name": config.service_name, **config.resource_attributes}
    attributes["service.name"] = config.service_name
    return Resource.create(attributes)


def build_providers(config: FlashConfig, *, console: TextIO | None = None) -> Telemetry:
    """Fresh SDK providers for ``config`` with its exporters attached, not installed globally.

    ``console`` receives the output of ``console`` exporters (default: the real stdout).
    """
    return _build(config, None, None, console, None)


def configure_telemetry(config: FlashConfig | None = None) -> Telemetry:
    """Build SDK providers with exporters, install them as the OTel global providers, return them.

    Call once at worker start-up; executors created afterwards use them. Call
    :meth:`Telemetry.shutdown` at exit to export what is left. With
    ``OTEL_SDK_DISABLED=true`` nothing is installed globally and nothing is exported.
    """
    config = config or FlashConfig.from_env()
    telemetry = build_providers(config)
    if config.export.sdk_disabled:
        return telemetry
    trace.set_tracer_provider(telemetry.tracer_provider)
    set_logger_provider(telemetry.logger_provider)
    if telemetry.meter_provider is not None:
        metrics.set_meter_provider(telemetry.meter_provider)
    return telemetry


def resolve_telemetry(
    config: FlashConfig,
    tracer_provider: trace.TracerProvider | None,
    logger_provider: LoggerProvider | None,
    meter_provider: MeterProvider | None = None,
) -> Telemetry:
    """Explicit providers first, then SDK global providers, else fresh ones of our own.

    Metrics go to ``meter_provider``, else to an SDK global meter provider, else to
    one built here when metrics are exported.
    """
    if logger_provider is not None and not isinstance(logger_provider, LoggerProvider):
        msg = "logger_provider must be an SDK LoggerProvider (opentelemetry.sdk._logs.LoggerProvider)"
        raise ConfigError(msg)
    global_tracer = trace.get_tracer_provider()
    global_logger = get_logger_provider()
    tracer = tracer_provider or (global_tracer if isinstance(global_tracer, TracerProvider) else None)
    logger = logger_provider or (global_logger if isinstance(global_logger, LoggerProvider) else None)
    global_meter = metrics.get_meter_provider()
    meter = meter_provider or (global_meter if isinstance(global_meter, MeterProvider) else None)
    if tracer is not None and logger is not None:
        timeout_s = config.export.shutdown_timeout_s
        return Telemetry(tracer, logger, owned=False, meter_provider=meter, shutdown_timeout_s=timeout_s)
    return _build(config, tracer, logger, None, meter)


def _build(
    config: FlashConfig,
    tracer: trace.TracerProvider | None,
    logger: LoggerProvider | None,
    console: TextIO | None,
    meter: MeterProvider | None,
) -> Telemetry:
    """Build what is missing; exporters go only on what is built here."""
    given = tuple(provider for provider in (tracer, logger, meter) if provider is not None)
    resource = build_resource(config)
    missing: dict[Signal, bool] = {"traces": tracer is None, "logs": logger is None, "metrics": meter is None}
    signals = [signal for signal, built_here in missing.items() if built_here]
    pipeline = build_pipeline(config.export, console, Redactor(config.secret_values), signals)
    if pipeline.metric_reader is not None:
        meter = MeterProvider([pipeline.metric_reader], resource=resource, shutdown_on_exit=False)
        ExecutionMetrics.of(meter, pipeline.durations)  # its reader exports the durations aggregated here
    if tracer is None:
        own_tracer = enable(new_tracer_provider(resource))
        if pipeline.span_processor is not None:
            own_tracer.add_span_processor(pipeline.span_processor)
        tracer = own_tracer
    if logger is None:
        logger = enable(new_logger_provider(resource))
        if pipeline.log_processor is not None:
            logger.add_log_record_processor(pipeline.log_processor)
    return Telemetry(tracer, logger, True, meter, pipeline.ledgers, config.export.shutdown_timeout_s, given)


def _flush_action(provider: Any, timeout_millis: int) -> Callable[[], object]:
    flush = getattr(provider, "force_flush", None)
    return (lambda: flush(timeout_millis)) if callable(flush) else (lambda: True)


def _shutdown_action(provider: Any) -> Callable[[], object]:
    shutdown = getattr(provider, "shutdown", None)
    return shutdown if callable(shutdown) else (lambda: None)


def _run_bounded(actions: list[tuple[object, Callable[[], object]]], timeout_s: float, what: str) -> bool:
    """Run each provider's action side by side in daemon threads; wait for them at most ``timeout_s``.

    An exporter stuck on an unresponsive collector keeps its thread until its own
    request deadline; the caller is never held past ``timeout_s``, nor past the
    deadline of an earlier action on the same providers that is still stuck.
    """
    deadline = _stuck.deadline([provider for provider, _ in actions], time.monotonic() + timeout_s)
    results: list[object] = []
    threads = [
        threading.Thread(target=_collect, args=(action, results, what), name="flash-telemetry", daemon=True)
        for _, action in actions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        (provider, thread)
        for (provider, _), thread in zip(actions, threads, strict=True)
        if thread.is_alive()
    ]
    if stuck:
        _stuck.remember(stuck, deadline)
        internal_logger().warning(
            "telemetry: %s did not finish within %.1f s (is the collector reachable?); "
            "not waiting any longer",
            what,
            timeout_s,
        )
        return False
    return all(result is not False for result in results)


class _StuckActions:
    """Flushes and shutdowns still running past their deadline, by provider.

    The executor flushes providers a host (the CLI, say) then shuts down; with the
    collector down, each would wait the full limit. A later action on a provider
    whose earlier action is still stuck shares that earlier deadline instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_provider: weakref.WeakKeyDictionary[object, tuple[threading.Thread, float]] = (
            weakref.WeakKeyDictionary()
        )

    def deadline(self, providers: list[object], proposed: float) -> float:
        """``proposed``, or an earlier deadline of a still-running action on one of ``providers``."""
        with self._lock:
            earlier = [self._by_provider.get(provider) for provider in providers if _weakrefable(provider)]
        pending = [
            limit for found in earlier if found is not None and found[0].is_alive() for limit in [found[1]]
        ]
        return min([proposed, *pending])

    def remember(self, stuck: list[tuple[object, threading.Thread]], deadline: float) -> None:
        """Record threads still running for their providers past ``deadline``."""
        with self._lock:
            for provider, thread in stuck:
                if _weakrefable(provider):
                    self._by_provider[provider] = (thread, deadline)


def _weakrefable(provider: object) -> bool:
    return hasattr(type(provider), "__weakref__")


_stuck = _StuckActions()


def _collect(action: Callable[[], object], results: list[object], what: str) -> None:
    try:
        results.append(action())
    except Exception:
        internal_logger().exception("telemetry: %s failed", what)
        results.append(False)
