"""The one frozen settings object, and the only place the environment is read."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

from otel_flash._settings import check_choice, parse_bool, parse_pairs
from otel_flash.exceptions import ConfigError
from otel_flash.export_settings import ExportSettings

__all__ = [
    "DEFAULT_SECRET_PATTERNS",
    "MIN_API_KEY_LENGTH",
    "EchoLines",
    "FlashConfig",
    "Installer",
    "Isolation",
    "LogLevel",
    "is_secret_name",
    "secret_values_from",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
DEFAULT_SECRET_PATTERNS = (
    "RUNPOD_API_KEY",
    "*_API_KEY",
    "*_TOKEN",
    "*_SECRET",
    "*_PASSWORD",
    "*_CREDENTIALS",
)
Installer = Literal["auto", "uv", "pip"]
Isolation = Literal["thread", "process"]
EchoLines = Literal["auto", "on", "off"]
_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_API_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class FlashConfig:
    """Settings of one executor.

    Precedence is argument, then environment (only through :meth:`from_env`),
    then the defaults below.

    Attributes:
        log_level: lowest level captured into stdout (``LOG_LEVEL``). At ``DEBUG``
            lines also show logger name and ``file:line``.
        max_log_lines: lines kept per execution (``FLASH_MAX_LOG_LINES``).
        max_log_bytes: bytes kept per execution (``FLASH_MAX_LOG_BYTES``).
        max_line_bytes: a longer single line is cut (``FLASH_MAX_LINE_BYTES``).
        max_instances: class instances kept; least recently used are evicted
            (``FLASH_MAX_INSTANCES``).
        max_workers: threads that run sync code for :meth:`RemoteExecutor.execute`
            (``FLASH_MAX_WORKERS``).
        service_name: ``service.name`` of the executor's own resource (``OTEL_SERVICE_NAME``).
        resource_attributes: extra resource attributes (``OTEL_RESOURCE_ATTRIBUTES``).
        capture_stdio: route ``print``/``sys.stderr`` of user code into stdout.
        propagate_threads: carry the execution context into threads the user starts.
        installer: ``uv``, ``pip`` or ``auto`` (uv when available) (``FLASH_INSTALLER``).
        install_timeout_s: installer time limit (``FLASH_INSTALL_TIMEOUT_S``).
        install_target: install Python packages into this directory instead of the
            running interpreter (``FLASH_INSTALL_TARGET``).
        workspace_path: persistent workspace directory; a fresh temporary one per
            execution when unset (``FLASH_WORKSPACE``).
        install_options: extra uv/pip arguments set by the operator, such as
            ``--index-url`` or ``--no-index --find-links DIR`` (``FLASH_INSTALL_OPTIONS``,
            split like a shell would). Requests can never add options.
        installer_command: argv prefix replacing the discovered uv (or ``python -m pip``
            when ``installer`` is ``pip``) (``FLASH_INSTALLER_COMMAND``).
        max_request_bytes: the HTTP worker answers 413 to a larger request body
            (``FLASH_MAX_REQUEST_BYTES``).
        timeout_s: time limit of the user's code (load and call) per execution, None for
            none (``FLASH_TIMEOUT_S``). A request's ``timeout_s`` replaces it.
        max_timeout_s: cap on any time limit, the request's included (``FLASH_MAX_TIMEOUT_S``).
        isolation: ``thread`` runs user code in the worker's process; ``process`` runs
            each execution in a fresh child process, so a crash, ``os._exit`` or a time
            limit ends only that request (``FLASH_ISOLATION``; see docs/isolation.md).
        memory_limit_mb: address-space limit of each child process with
            ``isolation="process"``, None for none (``FLASH_MEMORY_LIMIT_MB``).
        secret_env_patterns: names (``fnmatch`` patterns) of environment variables whose
            values are secrets (``FLASH_SECRET_ENV``, comma separated).
        secret_values: the values replaced by ``***`` wherever otel_flash shows or exports
            text; :meth:`from_env` fills it from the variables matching the patterns.
        installers_get_secrets: pass the secret variables on to installer subprocesses
            (``FLASH_INSTALLERS_GET_SECRETS``); by default they are removed from their environment.
        shutdown_grace_s: how long ``otel-flash serve`` lets running executions finish
            after SIGTERM/Ctrl-C before answering them ``success: false``, ``worker
            shutting down``; the process exits within about 2 s more
            (``FLASH_SHUTDOWN_GRACE_S``; see docs/worker.md).
        max_modules: files a request's ``modules`` may bring (``FLASH_MAX_MODULES``).
        max_modules_bytes: total UTF-8 size of a request's ``modules`` (``FLASH_MAX_MODULES_BYTES``).
        functions_module: the module a request naming a function or class without its
            code (runpod-flash's deployed mode) imports it from (``FLASH_FUNCTIONS_MODULE``).
        echo_lines: also write each captured line to the process's real stdout as it is
            emitted, so a container log shows it live: ``on``, ``off``, or ``auto`` (on under
            the RunPod handlers, off elsewhere; see :mod:`otel_flash.capture.echo`) (``FLASH_ECHO_LINES``).
        export: where spans, log records and metrics are sent (the standard
            ``OTEL_*`` exporter variables; see :class:`otel_flash.export_settings.ExportSettings`).
        api_keys: keys the HTTP worker accepts as ``Authorization: Bearer <key>``; none
            means no authentication (``FLASH_API_KEY``, comma separated for rotation). Each
            is at least 16 characters and is added to ``secret_values``.
        allow_unauthenticated: let ``otel-flash serve`` listen on a non-loopback address
            without ``api_keys`` (``FLASH_ALLOW_UNAUTHENTICATED``), for a gateway that
            authenticates.
        http_docs: serve ``/docs``, ``/redoc`` and ``/openapi.json`` (``FLASH_HTTP_DOCS``).
        max_connections: concurrent HTTP connections and requests; beyond, 503
            (``FLASH_MAX_CONNECTIONS``).
        keepalive_timeout_s: an idle keep-alive connection is closed after this long
            (``FLASH_KEEPALIVE_TIMEOUT_S``).
        header_timeout_s: a connection that has not sent its next request's headers this
            long after it opened or after the previous response is closed
            (``FLASH_HEADER_TIMEOUT_S``).
        body_timeout_s: a request body not fully received this long after its headers
            gets 408 (``FLASH_BODY_TIMEOUT_S``).
    """

    log_level: LogLevel = "INFO"
    max_log_lines: int = 1000
    max_log_bytes: int = 1 << 20
    max_line_bytes: int = 64 << 10
    max_instances: int = 64
    max_workers: int = 32
    service_name: str = "otel-flash"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    capture_stdio: bool = True
    propagate_threads: bool = True
    installer: Installer = "auto"
    install_timeout_s: float = 300.0
    install_target: str | None = None
    workspace_path: str | None = None
    install_options: tuple[str, ...] = ()
    installer_command: tuple[str, ...] = ()
    max_request_bytes: int = 32 << 20
    export: ExportSettings = field(default_factory=ExportSettings)

    timeout_s: float | None = None
    max_timeout_s: float | None = None
    isolation: Isolation = "thread"
    memory_limit_mb: int | None = None
    secret_env_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    secret_values: frozenset[str] = field(default_factory=frozenset, repr=False)
    installers_get_secrets: bool = False
    shutdown_grace_s: float = 25.0
    max_modules: int = 256
    max_modules_bytes: int = 8 << 20
    functions_module: str | None = None
    echo_lines: EchoLines = "auto"

    # The HTTP worker (server.py, http/, cli.py serve)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    allow_unauthenticated: bool = False
    http_docs: bool = False
    max_connections: int = 64
    keepalive_timeout_s: float = 5.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self._check_http()
        self._check_runpod_parity()
        check_choice("isolation", self.isolation, get_args(Isolation))
        if self.memory_limit_mb is not None and self.memory_limit_mb < 1:
            msg = f"memory_limit_mb must be at least 1, got {self.memory_limit_mb!r}"
            raise ConfigError(msg)
        seconds = ("timeout_s", "max_timeout_s", "keepalive_timeout_s", "header_timeout_s", "body_timeout_s")
        for name in seconds:
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                msg = f"{name} must be a positive number of seconds, got {value!r}"
                raise ConfigError(msg)
        if not 0 <= self.shutdown_grace_s < float("inf"):
            msg = f"shutdown_grace_s must be a number of seconds, 0 or more, got {self.shutdown_grace_s!r}"
            raise ConfigError(msg)
        check_choice("log_level", self.log_level, _LEVELS)
        for name in (
            "max_log_lines",
            "max_log_bytes",
            "max_line_bytes",
            "max_instances",
            "max_workers",
            "max_request_bytes",
            "max_connections",
            "max_modules",
            "max_modules_bytes",
        ):
            if getattr(self, name) < 1:
                msg = f"{name} must be at least 1, got {getattr(self, name)!r}"
                raise ConfigError(msg)
        check_choice("installer", self.installer, get_args(Installer))
        if self.install_timeout_s <= 0:
            msg = f"install_timeout_s must be positive, got {self.install_timeout_s!r}"
            raise ConfigError(msg)

    def _check_http(self) -> None:
        short = [key for key in self.api_keys if len(key) < MIN_API_KEY_LENGTH]
        if short:
            msg = f"an API key must be at least {MIN_API_KEY_LENGTH} characters ({len(short)} shorter)"
            raise ConfigError(msg)
        # Keys are secrets wherever otel_flash shows or exports text, however the config was built.
        object.__setattr__(self, "secret_values", self.secret_values | frozenset(self.api_keys))

    def _check_runpod_parity(self) -> None:
        module = self.functions_module
        if module is not None and not all(part.isidentifier() for part in module.split(".")):
            msg = f"functions_module must be a dotted module name, got {module!r}"
            raise ConfigError(msg)
        check_choice("echo_lines", self.echo_lines, get_args(EchoLines))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> FlashConfig:
        """Build a config from environment variables; keyword arguments win.

        Raises:
            ConfigError: a variable or argument has an invalid value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (variable, parse) in _ENV.items():
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                msg = f"{variable}={raw!r} is invalid: {exc}"
                raise ConfigError(msg) from exc
        if "secret_values" not in overrides:
            patterns = values.get("secret_env_patterns", DEFAULT_SECRET_PATTERNS)
            values["secret_values"] = secret_values_from(env, overrides.get("secret_env_patterns", patterns))
        if "export" not in overrides:
            values["export"] = ExportSettings.from_environ(env)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> FlashConfig:
        """Return a copy with ``changes`` applied (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            msg = f"unknown FlashConfig field(s): {', '.join(sorted(unknown))}"
            raise ConfigError(msg)
        return replace(self, **changes)


def _parse_names(raw: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def is_secret_name(name: str, patterns: tuple[str, ...]) -> bool:
    """True when the variable ``name`` matches one of the secret ``patterns`` (case-insensitive)."""
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name.upper(), pattern.upper()) for pattern in patterns)


def secret_values_from(env: Mapping[str, str], patterns: tuple[str, ...]) -> frozenset[str]:
    """Values of the variables whose names match ``patterns`` (short values are not secrets)."""
    return frozenset(
        value for name, value in env.items() if len(value) >= 6 and is_secret_name(name, patterns)
    )


def _parse_argv(raw: str) -> tuple[str, ...]:
    """Split like a POSIX shell (quotes group words); nothing is executed."""
    import shlex

    return tuple(shlex.split(raw))


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "log_level": ("LOG_LEVEL", str.upper),
    "max_log_lines": ("FLASH_MAX_LOG_LINES", int),
    "max_log_bytes": ("FLASH_MAX_LOG_BYTES", int),
    "max_line_bytes": ("FLASH_MAX_LINE_BYTES", int),
    "max_instances": ("FLASH_MAX_INSTANCES", int),
    "max_workers": ("FLASH_MAX_WORKERS", int),
    "service_name": ("OTEL_SERVICE_NAME", str),
    "resource_attributes": ("OTEL_RESOURCE_ATTRIBUTES", parse_pairs),
    "capture_stdio": ("FLASH_CAPTURE_STDIO", parse_bool),
    "propagate_threads": ("FLASH_PROPAGATE_THREADS", parse_bool),
    "installer": ("FLASH_INSTALLER", str.lower),
    "install_timeout_s": ("FLASH_INSTALL_TIMEOUT_S", float),
    "install_target": ("FLASH_INSTALL_TARGET", str),
    "workspace_path": ("FLASH_WORKSPACE", str),
    "timeout_s": ("FLASH_TIMEOUT_S", float),
    "max_timeout_s": ("FLASH_MAX_TIMEOUT_S", float),
    "isolation": ("FLASH_ISOLATION", str.lower),
    "memory_limit_mb": ("FLASH_MEMORY_LIMIT_MB", int),
    "secret_env_patterns": ("FLASH_SECRET_ENV", _parse_names),
    "installers_get_secrets": ("FLASH_INSTALLERS_GET_SECRETS", parse_bool),
    "install_options": ("FLASH_INSTALL_OPTIONS", _parse_argv),
    "installer_command": ("FLASH_INSTALLER_COMMAND", _parse_argv),
    "max_request_bytes": ("FLASH_MAX_REQUEST_BYTES", int),
    "shutdown_grace_s": ("FLASH_SHUTDOWN_GRACE_S", float),
    "api_keys": ("FLASH_API_KEY", _parse_names),
    "allow_unauthenticated": ("FLASH_ALLOW_UNAUTHENTICATED", parse_bool),
    "http_docs": ("FLASH_HTTP_DOCS", parse_bool),
    "max_connections": ("FLASH_MAX_CONNECTIONS", int),
    "keepalive_timeout_s": ("FLASH_KEEPALIVE_TIMEOUT_S", float),
    "header_timeout_s": ("FLASH_HEADER_TIMEOUT_S", float),
    "body_timeout_s": ("FLASH_BODY_TIMEOUT_S", float),
    "max_modules": ("FLASH_MAX_MODULES", int),
    "max_modules_bytes": ("FLASH_MAX_MODULES_BYTES", int),
    "functions_module": ("FLASH_FUNCTIONS_MODULE", str),
    "echo_lines": ("FLASH_ECHO_LINES", str.lower),
}
