"""Where telemetry goes: export settings, parsed from the standard ``OTEL_*`` variables.

:class:`ExportSettings` is a plain value. :meth:`ExportSettings.from_environ` parses a
mapping it is given; only :meth:`otel_flash.FlashConfig.from_env` hands it
``os.environ``, so the environment is still read in one place.

Export is off unless configured: a signal is exported when its
``OTEL_<SIGNAL>_EXPORTER`` says so, or, when that is unset, when an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or the signal's own) is set. ``OTEL_SDK_DISABLED=true``
turns every exporter off; executions still run, capture their output and get trace ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from otel_flash._settings import check_choice, choice, parse_bool, parse_pairs, parse_variable
from otel_flash.exceptions import ConfigError

__all__ = [
    "SIGNALS",
    "BatchSettings",
    "Compression",
    "ExportSettings",
    "ExporterName",
    "OtlpProtocol",
    "Signal",
    "SignalExport",
]

Signal = Literal["traces", "logs", "metrics"]
ExporterName = Literal["otlp", "console", "none"]
OtlpProtocol = Literal["grpc", "http/protobuf"]
Compression = Literal["none", "gzip"]

SIGNALS: tuple[Signal, ...] = ("traces", "logs", "metrics")
_EXPORTERS: tuple[ExporterName, ...] = ("otlp", "console", "none")
_PROTOCOLS: tuple[OtlpProtocol, ...] = ("grpc", "http/protobuf")
_COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip")
_DEFAULT_PORTS: dict[OtlpProtocol, int] = {"grpc": 4317, "http/protobuf": 4318}


@dataclass(frozen=True, slots=True)
class SignalExport:
    """How one signal (traces, logs or metrics) leaves the process.

    Attributes:
        exporter: ``otlp``, ``console`` or ``none``.
        endpoint: for gRPC the collector's ``http://host:port``; for HTTP the full URL
            of the signal's path (``http://host:4318/v1/traces``). None: the local default.
        protocol: ``grpc`` or ``http/protobuf``.
        headers: sent with every export request (``OTEL_EXPORTER_OTLP_HEADERS``).
        timeout_s: time limit of one export request, retries included.
        compression: ``none`` or ``gzip``.
    """

    exporter: ExporterName = "none"
    endpoint: str | None = None
    protocol: OtlpProtocol = "grpc"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    compression: Compression = "none"

    def __post_init__(self) -> None:
        check_choice("exporter", self.exporter, _EXPORTERS)
        check_choice("protocol", self.protocol, _PROTOCOLS)
        check_choice("compression", self.compression, _COMPRESSIONS)
        if self.timeout_s <= 0:
            msg = f"timeout_s must be positive, got {self.timeout_s!r}"
            raise ConfigError(msg)

    def url(self, signal: Signal) -> str:
        """The endpoint to use, with the default for the protocol when none is set."""
        if self.endpoint:
            return self.endpoint
        base = f"http://localhost:{_DEFAULT_PORTS[self.protocol]}"
        return base if self.protocol == "grpc" else f"{base}/v1/{signal}"


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """Bounds of a batch processor (``OTEL_BSP_*`` for spans, ``OTEL_BLRP_*`` for logs).

    When the queue is full, new items are dropped (and counted), never waited for.
    """

    schedule_delay_ms: float = 5000.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_timeout_ms: float = 30000.0

    def __post_init__(self) -> None:
        for name in ("schedule_delay_ms", "max_queue_size", "max_export_batch_size", "export_timeout_ms"):
            if getattr(self, name) <= 0:
                msg = f"{name} must be positive, got {getattr(self, name)!r}"
                raise ConfigError(msg)
        if self.max_export_batch_size > self.max_queue_size:
            msg = (
                f"max_export_batch_size ({self.max_export_batch_size}) must not exceed "
                f"max_queue_size ({self.max_queue_size})"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """Everything about sending telemetry out of the process.

    Attributes:
        sdk_disabled: ``OTEL_SDK_DISABLED``: nothing is exported, no metrics are kept.
        traces: span export.
        logs: log record export.
        metrics: metric export.
        span_batch: the span batch processor (``OTEL_BSP_*``).
        log_batch: the log record batch processor (``OTEL_BLRP_*``).
        metric_interval_ms: time between metric exports (``OTEL_METRIC_EXPORT_INTERVAL``).
        metric_timeout_ms: time limit of one metric export (``OTEL_METRIC_EXPORT_TIMEOUT``).
        shutdown_timeout_s: the longest that flushing and shutting down telemetry may
            take, however unresponsive the collector (``FLASH_TELEMETRY_SHUTDOWN_TIMEOUT_S``).
        process: OTLP spans and log records are encoded and sent by a process of their
            own, off the worker's GIL (``FLASH_EXPORT_PROCESS``; see
            :mod:`otel_flash.telemetry.export_process`). Off by default in a library
            user's process; ``otel-flash serve`` and the RunPod handler, which own their
            process, turn it on unless the variable says otherwise.
    """

    sdk_disabled: bool = False
    traces: SignalExport = field(default_factory=SignalExport)
    logs: SignalExport = field(default_factory=SignalExport)
    metrics: SignalExport = field(default_factory=SignalExport)
    span_batch: BatchSettings = field(default_factory=BatchSettings)
    log_batch: BatchSettings = field(default_factory=lambda: BatchSettings(schedule_delay_ms=1000.0))
    metric_interval_ms: float = 60000.0
    metric_timeout_ms: float = 30000.0
    shutdown_timeout_s: float = 5.0
    process: bool = False

    def __post_init__(self) -> None:
        for name in ("metric_interval_ms", "metric_timeout_ms", "shutdown_timeout_s"):
            if getattr(self, name) <= 0:
                msg = f"{name} must be positive, got {getattr(self, name)!r}"
                raise ConfigError(msg)

    def signal(self, signal: Signal) -> SignalExport:
        """The settings of ``signal``."""
        target: SignalExport = getattr(self, signal)
        return target

    def enabled(self, signal: Signal) -> bool:
        """True when ``signal`` is exported anywhere."""
        return not self.sdk_disabled and self.signal(signal).exporter != "none"

    @classmethod
    def otlp(
        cls,
        endpoint: str,
        protocol: OtlpProtocol = "grpc",
        *,
        signals: tuple[Signal, ...] = SIGNALS,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        **settings: object,
    ) -> ExportSettings:
        """OTLP export of ``signals`` to one collector, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` would set.

        ``endpoint`` is the base URL (``http://host:4317``); for HTTP the signal paths
        are appended. Other keyword arguments set fields of :class:`ExportSettings`.
        """
        per_signal = {
            signal: SignalExport(
                "otlp", _signal_url(endpoint, protocol, signal), protocol, dict(headers or {}), timeout_s
            )
            for signal in signals
        }
        return cls(**per_signal, **settings)  # type: ignore[arg-type]  # checked by the dataclass

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, process: bool = False) -> ExportSettings:
        """Parse the standard ``OTEL_*`` variables found in ``environ``.

        ``process`` is the default of :attr:`process` when ``FLASH_EXPORT_PROCESS`` is unset.

        Raises:
            ConfigError: a variable has an invalid value; the message names it.
        """
        env = {key: value.strip() for key, value in environ.items() if value.strip()}
        base = cls()
        return cls(
            sdk_disabled=parse_variable(env, "OTEL_SDK_DISABLED", parse_bool, default=False),
            traces=_signal_from_environ(env, "traces"),
            logs=_signal_from_environ(env, "logs"),
            metrics=_signal_from_environ(env, "metrics"),
            span_batch=_batch_from_environ(env, "OTEL_BSP", base.span_batch),
            log_batch=_batch_from_environ(env, "OTEL_BLRP", base.log_batch),
            metric_interval_ms=parse_variable(
                env, "OTEL_METRIC_EXPORT_INTERVAL", float, base.metric_interval_ms
            ),
            metric_timeout_ms=parse_variable(
                env, "OTEL_METRIC_EXPORT_TIMEOUT", float, base.metric_timeout_ms
            ),
            shutdown_timeout_s=parse_variable(
                env, "FLASH_TELEMETRY_SHUTDOWN_TIMEOUT_S", float, base.shutdown_timeout_s
            ),
            process=parse_variable(env, "FLASH_EXPORT_PROCESS", parse_bool, default=process),
        )


def _signal_from_environ(env: Mapping[str, str], signal: Signal) -> SignalExport:
    """One signal's settings; the per-signal variable wins over the general one."""
    upper = signal.upper()

    def pick(suffix: str) -> tuple[str, str] | None:
        for name in (f"OTEL_EXPORTER_OTLP_{upper}_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
            if name in env:
                return name, env[name]
        return None

    protocol: OtlpProtocol = parse_variable(
        env, _name_of(pick("PROTOCOL")), choice(_PROTOCOLS), default="grpc"
    )
    own, shared = env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"), env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    endpoint = own or (_signal_url(shared, protocol, signal) if shared else None)
    configured: ExporterName = "otlp" if endpoint else "none"
    exporter: ExporterName = parse_variable(env, f"OTEL_{upper}_EXPORTER", _exporter_name, default=configured)
    timeout_ms = parse_variable(env, _name_of(pick("TIMEOUT")), float, default=10000.0)
    try:
        return SignalExport(
            exporter=exporter,
            endpoint=endpoint,
            protocol=protocol,
            headers=parse_variable(env, _name_of(pick("HEADERS")), parse_pairs, default={}),
            timeout_s=timeout_ms / 1000.0,
            compression=parse_variable(
                env, _name_of(pick("COMPRESSION")), choice(_COMPRESSIONS), default="none"
            ),
        )
    except ConfigError as exc:
        msg = f"OTEL_EXPORTER_OTLP_* settings of {signal} are invalid: {exc}"
        raise ConfigError(msg) from exc


def _batch_from_environ(env: Mapping[str, str], prefix: str, base: BatchSettings) -> BatchSettings:
    changes: dict[str, float] = {
        "schedule_delay_ms": parse_variable(env, f"{prefix}_SCHEDULE_DELAY", float, base.schedule_delay_ms),
        "max_queue_size": parse_variable(env, f"{prefix}_MAX_QUEUE_SIZE", int, base.max_queue_size),
        "max_export_batch_size": parse_variable(
            env, f"{prefix}_MAX_EXPORT_BATCH_SIZE", int, base.max_export_batch_size
        ),
        "export_timeout_ms": parse_variable(env, f"{prefix}_EXPORT_TIMEOUT", float, base.export_timeout_ms),
    }
    try:
        return replace(base, **changes)  # type: ignore[arg-type]  # sizes are parsed with int
    except ConfigError as exc:
        msg = f"{prefix}_* settings are invalid: {exc}"
        raise ConfigError(msg) from exc


def _signal_url(endpoint: str, protocol: OtlpProtocol, signal: Signal) -> str:
    """The spec's rule: gRPC uses the base endpoint, HTTP appends ``/v1/<signal>``."""
    if protocol == "grpc":
        return endpoint
    return f"{endpoint.rstrip('/')}/v1/{signal}"


def _name_of(found: tuple[str, str] | None) -> str:
    return found[0] if found is not None else ""


def _exporter_name(raw: str) -> ExporterName:
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    if len(names) != 1:
        msg = "one exporter name is supported: otlp, console or none"
        raise ValueError(msg)
    return choice(_EXPORTERS)(names[0])
