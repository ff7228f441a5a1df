"""Telemetry shutdown: one limit bounds the whole of it, however unresponsive the collector."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.otlp_receivers import BlackHole
from tests.requests import HELLO, function_request
from tests.stack import clean_env

LIMIT_S = 4


def test_run_exits_within_its_shutdown_limit_with_the_collector_black_holed() -> None:
    """``otel-flash run`` waits one shutdown limit in all (not one per flush), then reports the loss."""
    env = clean_env()
    with BlackHole() as hole:
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": hole.endpoint,
            "FLASH_TELEMETRY_SHUTDOWN_TIMEOUT_S": str(LIMIT_S),
        }
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "otel_flash", "run", "-"],
            input=json.dumps(function_request(HELLO, "hello", "you")),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        took_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took_s < LIMIT_S + 3.5, (
        done.stderr
    )  # twice the limit before: the flush and the shutdown each waited
    assert "spans not exported to" in done.stderr
