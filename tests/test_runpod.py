"""The RunPod handlers: through the runpod package's own local modes, and in process."""

from __future__ import annotations

import ast
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runpod.serverless.modules.rp_handler import is_generator

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.integrations import runpod as integration
from otel_flash.integrations.runpod import RunPodWorker
from otel_flash.testing import TelemetryCapture
from tests.requests import HELLO, function_request, stdout_lines

WORKER_SCRIPT = """
import os
import runpod
from otel_flash.integrations.runpod import handler, stream_handler

chosen = stream_handler if os.environ.get("HANDLER") == "stream" else handler
runpod.serverless.start({"handler": chosen, "return_aggregate_stream": True})
"""
COUNTER = {
    "execution_type": "class",
    "class_name": "Counter",
    "class_code": (
        "class Counter:\n"
        "    def __init__(self, start=0):\n"
        "        self.value = start\n"
        "    def add(self, amount=1):\n"
        "        self.value += amount\n"
        "        print(f'value is now {self.value}')\n"
        "        return self.value\n"
    ),
    "constructor_kwargs": {"start": 10},
    "method_name": "add",
    "kwargs": {"amount": 5},
    "instance_id": "counter-1",
    "create_new_instance": False,
    "serialization_format": "json",
}


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """A worker script as a user would write it."""
    path = tmp_path / "handler.py"
    path.write_text(WORKER_SCRIPT)
    return path


def _env(handler: str = "plain") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OTEL_"))}
    return {**env, "HANDLER": handler}


def _job_result(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if "| Job result: " in line:
            result: dict[str, Any] = ast.literal_eval(line.split("| Job result: ", 1)[1])
            return result
    pytest.fail(f"no job result in the worker's output:\n{output}")


def _test_input(script: Path, job: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one job with runpod's local test mode (`python handler.py --test_input JOB`), ``env`` added."""
    return subprocess.run(
        [sys.executable, str(script), "--test_input", job],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=script.parent,
        env={**_env(), **env},
        check=False,
    )


def test_handler_runs_a_job_in_runpods_local_test_mode(script: Path) -> None:
    """`python handler.py --test_input ...` runs the job and prints our FunctionResponse as its output."""
    job = json.dumps({"input": function_request(HELLO, "hello", "pod")})
    done = _test_input(script, job)
    assert done.returncode == 0, done.stdout + done.stderr
    output = _job_result(done.stdout)["output"]
    assert output["success"] is True
    assert output["json_result"] == "Hello, pod!"
    assert stdout_lines(output["stdout"])[1] == "Hello, pod!"


def test_failed_execution_fails_the_local_test_job(script: Path) -> None:
    """A user error becomes the job's error, so runpod's test mode exits 1 (as with the reference worker)."""
    job = json.dumps({"input": function_request("def f():\n    raise KeyError('k')\n", "f")})
    done = _test_input(script, job)
    assert done.returncode == 1
    assert "KeyError" in done.stdout


@pytest.fixture
def runpod_api(script: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """runpod's local API server (`--rp_serve_api`) around the worker script; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = getattr(request, "param", "plain")
    command = [sys.executable, str(script), "--rp_serve_api", "--rp_api_host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--rp_api_port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=script.parent,
        env=_env(handler),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"{url}/docs", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("runpod's local API server did not start")


def test_class_state_persists_across_jobs_of_one_worker(runpod_api: str) -> None:
    """Two jobs on one worker process reach the same class instance (one executor per process)."""
    values = []
    for _ in range(2):
        answer = httpx.post(f"{runpod_api}/runsync", json={"input": COUNTER}, timeout=60).json()
        assert answer["status"] == "COMPLETED", answer
        values.append(answer["output"]["json_result"])
        calls = answer["output"]["instance_info"]["method_calls"]
    assert values == [15, 20]
    assert calls == 2


@pytest.mark.parametrize("runpod_api", ["stream"], indirect=True)
def test_stream_handler_yields_lines_then_the_response(runpod_api: str) -> None:
    """The generator handler's aggregated output is each log line, then the response event."""
    job = {"input": function_request(HELLO, "hello", "gen")}
    answer = httpx.post(f"{runpod_api}/runsync", json=job, timeout=60).json()
    assert answer["status"] == "COMPLETED", answer
    *logs, last = answer["output"]
    assert [event["type"] for event in logs] == ["log", "log"]
    assert logs[0]["line"].endswith(" | INFO | greeting gen")
    assert logs[1] == {"type": "log", "line": "Hello, gen!"}
    assert last["type"] == "response"
    assert last["response"]["json_result"] == "Hello, gen!"


def test_importing_the_integration_changes_no_global_state() -> None:
    """Import creates no executor: the root logger and sys.stdout are untouched until the first job."""
    probe = (
        "import logging, sys\n"
        "import otel_flash.integrations.runpod\n"
        "print(len(logging.getLogger().handlers), sys.stdout is sys.__stdout__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=_env(), check=True
    )
    assert done.stdout.split() == ["0", "True"]


def test_module_handlers_are_what_runpod_expects() -> None:
    """`handler` is a coroutine function and `stream_handler` an async generator, as runpod detects them."""
    assert inspect.iscoroutinefunction(integration.handler)
    assert not is_generator(integration.handler)
    assert is_generator(integration.stream_handler)


@pytest.fixture
def worker(telemetry: TelemetryCapture) -> Iterator[tuple[RunPodWorker, list[RemoteExecutor]]]:
    """A worker whose executor, built on first use, exports into memory; with the list of those built."""
    built: list[RemoteExecutor] = []

    def factory() -> RemoteExecutor:
        executor = RemoteExecutor(
            FlashConfig(),
            tracer_provider=telemetry.tracer_provider,
            logger_provider=telemetry.logger_provider,
        )
        built.append(executor)
        return executor

    instance = RunPodWorker(factory)
    yield instance, built
    instance.shutdown()


@pytest.mark.asyncio
async def test_one_lazily_built_executor_serves_every_job(
    worker: tuple[RunPodWorker, list[RemoteExecutor]], telemetry: TelemetryCapture
) -> None:
    """No executor before the first job; then the same one for each job; the job id on flash.execute."""
    runpod_worker, built = worker
    assert built == []
    first = await runpod_worker.handle({"id": "job-a", "input": COUNTER})
    second = await runpod_worker.handle({"id": "job-b", "input": COUNTER})
    assert len(built) == 1
    assert (first["json_result"], second["json_result"]) == (15, 20)
    job_ids = [(span.attributes or {}).get("flash.job_id") for span in telemetry.spans()]
    assert [job_id for job_id in job_ids if job_id] == ["job-a", "job-b"]


@pytest.mark.asyncio
async def test_stream_records_the_job_id_and_ends_with_the_response(
    worker: tuple[RunPodWorker, list[RemoteExecutor]], telemetry: TelemetryCapture
) -> None:
    """The generator variant yields the lines, then the response; flash.execute carries the job id."""
    runpod_worker, _built = worker
    events = [
        event
        async for event in runpod_worker.stream(
            {"id": "job-s", "input": function_request(HELLO, "hello", "s")}
        )
    ]
    assert [event["type"] for event in events] == ["log", "log", "response"]
    assert events[-1]["response"]["success"] is True
    assert (telemetry.span("flash.execute").attributes or {})["flash.job_id"] == "job-s"


@pytest.mark.asyncio
async def test_invalid_input_is_a_failed_response(worker: tuple[RunPodWorker, list[RemoteExecutor]]) -> None:
    """A job whose input is not a request answers success false with the reason, never raises."""
    runpod_worker, _built = worker
    answer = await runpod_worker.handle({"id": "bad", "input": {"function_name": "f"}})
    assert answer["success"] is False
    assert "'function_code' is required" in answer["error"]
