"""A real telemetry stack for end-to-end tests: ``otel-flash serve`` -> rotel -> a receiver in the test.

* :class:`RotelCollector`: the rotel OTLP collector (PyPI ``rotel``, a Rust binary in
  the wheel) on loopback ports of its own, exporting over OTLP to an endpoint; it can
  be stopped and started again on the same ports.
* :class:`ServedWorker`: ``otel-flash serve`` in a subprocess, exporting where its
  ``OTEL_*`` variables say.
* :func:`free_port`: a loopback port nothing listens on now.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Literal, Self

import httpx

from tests.otlp_receivers import Started

ROTEL_AGENT = str(files("rotel") / "rotel-agent")
OTEL_FLASH = str(Path(sys.executable).parent / "otel-flash")
_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on at the time of the call."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without the ``OTEL_*``, ``FLASH_*`` and ``LOG_LEVEL`` a worker reads."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FLASH_", "LOG_LEVEL"))}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes] | None) -> tuple[str, str]:
    """SIGTERM, then wait (SIGKILL past the limit); what it wrote on stdout and stderr."""
    if process is None:
        return "", ""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=10)
    return (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")


class RotelCollector(Started):
    """rotel receiving OTLP on two loopback ports (gRPC, HTTP) and exporting to ``exporter_endpoint``."""

    def __init__(
        self, exporter_endpoint: str, exporter_protocol: Literal["grpc", "http"], workdir: Path
    ) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self._argv = [
            ROTEL_AGENT,
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            exporter_endpoint,
            "--otlp-exporter-protocol",
            exporter_protocol,
            "--batch-timeout",
            "100ms",
            "--pid-file",
            str(workdir / "rotel.pid"),
            "--log-file",
            str(workdir / "rotel.log"),
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def endpoint(self, protocol: Literal["grpc", "http/protobuf"]) -> str:
        """The URL a worker exports to for ``protocol``."""
        return f"http://127.0.0.1:{self.grpc_port if protocol == 'grpc' else self.http_port}"

    def start(self) -> Self:
        """Start rotel and wait until both receivers accept connections."""
        env = {**os.environ, "NO_COLOR": "1"}
        self._process = subprocess.Popen(
            self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        self.starts += 1
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not (_listening(self.grpc_port) and _listening(self.http_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                msg = f"rotel did not start: {_stop(self._process)[1]}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop rotel (SIGTERM) and wait until its receivers are closed."""
        _stop(self._process)
        self._process = None


class ServedWorker(Started):
    """``otel-flash serve`` on a free loopback port, its environment ``env`` (plus ``PATH``-like basics).

    Once stopped (SIGTERM: the worker drains and flushes its telemetry), :attr:`process` holds
    its exit status, :attr:`out` and :attr:`err` what it wrote.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**clean_env(), **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.out = self.err = ""

    def start(self) -> Self:
        """Start serving and wait until ``/ping`` answers 200."""
        self.process = subprocess.Popen(
            [OTEL_FLASH, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/ping", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        msg = f"otel-flash serve did not come up: {_stop(self.process)[1]}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """SIGTERM (the worker flushes its telemetry), then wait; keeps what it wrote (once)."""
        process = self.process
        if process is not None and process.stdout is not None and not process.stdout.closed:
            self.out, self.err = _stop(process)
