"""What one request does to interpreter-wide state is undone for the next (thread mode)."""

from __future__ import annotations

import _thread
import builtins
import logging
import subprocess
import sys

import httpx
import pytest

from otel_flash import RemoteExecutor
from otel_flash.server import create_app
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines
from tests.stack import clean_env
from tests.test_hostile import OK, _still_works
from tests.test_server import serving

RAISING_FACTORY = """
import logging
def f():
    def factory(*args, **kwargs):
        raise RuntimeError("no records today")
    logging.setLogRecordFactory(factory)
"""


def _warning(response_stdout: str | None) -> str:
    """The level and message of the last captured line."""
    return " | ".join(stdout_lines(response_stdout)[-1].split(" | ")[1:])


@pytest.mark.parametrize(
    ("code", "warning"),
    [
        (RAISING_FACTORY, "user code replaced the log record factory; otel_flash restored it"),
        (
            "import logging\ndef f():\n    logging.disable(logging.CRITICAL)\n",
            "user code called logging.disable; otel_flash restored the level",
        ),
        (
            "import builtins\ndef f():\n    builtins.print = lambda *a, **k: None\n",
            "user code replaced builtins.print; otel_flash restored it",
        ),
        (
            "import logging\ndef f():\n    logging.getLogger('ok').disabled = True\n",
            "user code disabled the loggers ok; otel_flash re-enabled them",
        ),
    ],
    ids=["record-factory", "logging-disable", "print", "logger-disabled"],
)
def test_interpreter_state_is_restored(executor: RemoteExecutor, code: str, warning: str) -> None:
    """The change is undone with a warning in that request's stdout; the next request is whole."""
    factory, level, printer = logging.getLogRecordFactory(), logging.root.manager.disable, builtins.print
    _still_works(executor)  # the 'ok' logger exists before
    response = executor.execute_sync(function_request(code, "f"))
    assert response.success, response.error
    assert _warning(response.stdout) == f"WARN | {warning}"
    assert (logging.getLogRecordFactory(), logging.root.manager.disable) == (factory, level)
    assert builtins.print is printer
    _still_works(executor)


def test_loggers_created_by_the_request_stay_as_it_left_them(executor: RemoteExecutor) -> None:
    """Only loggers that existed before the request are re-enabled."""
    code = "import logging\ndef f():\n    logging.getLogger('made.by.f').disabled = True\n"
    response = executor.execute_sync(function_request(code, "f"))
    assert "re-enabled" not in (response.stdout or "")
    assert logging.getLogger("made.by.f").disabled


def test_interrupt_main_is_ignored_with_a_warning(executor: RemoteExecutor) -> None:
    """_thread.interrupt_main() from user code does not interrupt the main thread; it is told."""
    code = "import _thread\ndef f():\n    _thread.interrupt_main()\n    return 'still here'\n"
    response = executor.execute_sync(function_request(code, "f"))
    assert response.json_result == "still here"
    assert _warning(response.stdout) == (
        "WARN | user code called _thread.interrupt_main(); otel_flash kept the worker running"
    )
    _still_works(executor)


def test_interrupt_main_outside_executions_still_interrupts() -> None:
    """The guard leaves interrupt_main working for the host's own code.

    In a fresh interpreter: the suite's process has executors, contexts and signal
    handlers that other tests leave behind, which this must not depend on.
    """
    host = (
        "import _thread, time\n"
        "from otel_flash import RemoteExecutor\n"
        "with RemoteExecutor() as executor:\n"
        "    try:\n"
        "        _thread.interrupt_main()\n"
        "        deadline = time.monotonic() + 30  # it lands at a bytecode boundary\n"
        "        while time.monotonic() < deadline:\n"
        "            pass\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", host], capture_output=True, text=True, timeout=90, env=clean_env(), check=False
    )
    assert (result.returncode, result.stdout) == (0, "interrupted\n"), result.stderr


def test_raising_record_factory_does_not_hang_the_worker(executor: RemoteExecutor) -> None:
    """Over real uvicorn: after a request installs a raising factory, /ping and the next request answer."""
    with serving(create_app(executor)) as url:
        first = httpx.post(f"{url}/execute", json=function_request(RAISING_FACTORY, "f"), timeout=30)
        assert first.json()["success"] is True
        assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
        answer = httpx.post(f"{url}/execute", json=OK, timeout=30).json()
        assert stdout_lines(answer["stdout"])[0].endswith("| INFO | still here")


def test_loggers_the_host_disables_between_requests_stay_disabled(executor: RemoteExecutor) -> None:
    """Only what an execution changes is undone: a logger the host disabled before it stays so."""
    host = logging.getLogger("host.quiet")
    host.disabled = True
    try:
        response = executor.execute_sync(function_request("def f():\n    return 1\n", "f"))
        assert response.success and "re-enabled" not in (response.stdout or "")
        assert host.disabled
    finally:
        host.disabled = False


def test_shutdown_removes_the_interpreter_hooks(telemetry: TelemetryCapture) -> None:
    """When an executor shuts down, _thread.interrupt_main and logging.Logger are as they were."""
    original, setattr_before = _thread.interrupt_main, logging.Logger.__dict__.get("__setattr__")
    with RemoteExecutor(
        tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        assert executor.in_execution() is False
    assert _thread.interrupt_main is original
    assert logging.Logger.__dict__.get("__setattr__") is setattr_before
