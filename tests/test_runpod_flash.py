"""runpod-flash's own client code against our three entry points: modules, deployed mode, live lines.

Requests are built and answers decoded by the installed runpod-flash (its stubs and
models, not copies); only the transport to the worker is ours where its real one
would need RunPod's cloud.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runpod_flash.core.resources.request_logs import QBRequestLogFetcher
from runpod_flash.core.resources.serverless import (
    JobOutput,
    _format_worker_log_line,
    _normalize_stream_log_line,
)
from runpod_flash.protos.remote_execution import FunctionRequest as FlashRequest
from runpod_flash.protos.remote_execution import FunctionResponse as FlashResponse
from runpod_flash.runtime.serialization import serialize_args
from runpod_flash.stubs.live_serverless import LiveServerlessStub
from runpod_flash.stubs.load_balancer_sls import LoadBalancerSlsStub

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.server import create_app
from tests.test_caller_trace import LoopbackEndpoint
from tests.test_runpod import _job_result, _test_input
from tests.test_runpod import runpod_api as runpod_api  # a fixture, used by name
from tests.test_runpod import script as script  # a fixture, used by name
from tests.test_server import serving

APP = """
def compute(x):
    import logging

    from helpers import double

    logging.getLogger("app").info("computing %s", x)
    print("the answer follows")
    return double(x)
"""
HELPERS = "def double(x):\n    return 2 * x\n"
DEPLOYED = """
def greet(name):
    print(f"greeting {name}")
    return f"Hello, {name}!"


class Greeter:
    def __init__(self, greeting):
        self.greeting = greeting

    def greet(self, name):
        return f"{self.greeting}, {name}!"
"""


@pytest.fixture
def compute(tmp_path: Path) -> Callable[..., Any]:
    """A caller's project: `app.compute` imports its sibling module `helpers` inside the function."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(APP)
    (project / "helpers.py").write_text(HELPERS)
    spec = importlib.util.spec_from_file_location("flash_client_app", project / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function: Callable[..., Any] = module.compute
    return function


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of deployed functions on sys.path (and PYTHONPATH); its name. Forgotten afterwards."""
    folder = tmp_path / "deployed"
    folder.mkdir()
    (folder / "flash_deployed_functions.py").write_text(DEPLOYED)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    yield "flash_deployed_functions"
    sys.modules.pop("flash_deployed_functions", None)


def _prepared(compute: Callable[..., Any], *args: Any) -> FlashRequest:
    """The queue-based client's request for ``compute(*args)``, modules included."""
    request: FlashRequest = asyncio.run(
        LiveServerlessStub(None).prepare_request(compute, None, None, True, *args)
    )
    assert set(request.modules) == {"helpers.py"}
    return request


def _decoded(answer: dict[str, Any]) -> Any:
    """The result, as the queue-based client decodes a response (its own stub)."""
    return LiveServerlessStub(None).handle_response(FlashResponse(**answer))


class _LocalQueue:
    """What LiveServerlessStub needs of a ServerlessResource: runsync, here posting to runpod's local API."""

    name = "otel-flash"

    def __init__(self, url: str) -> None:
        self._url = url

    async def runsync(self, payload: dict[str, Any]) -> JobOutput:
        async with httpx.AsyncClient(timeout=90) as client:
            answer = (await client.post(f"{self._url}/runsync", json={"input": payload})).json()
        return JobOutput(workerId="local", delayTime=0, executionTime=0, **answer)


def test_in_process_executor_runs_the_clients_modules(
    compute: Callable[..., Any], executor: RemoteExecutor
) -> None:
    """The client's request with `modules` runs on the executor; its own decoder gets the result."""
    payload = _prepared(compute, 21).model_dump(exclude_none=True)
    response = executor.execute_sync(payload)
    assert _decoded(response.model_dump()) == 42


def test_deployed_request_resolves_from_the_functions_module(deployed: str) -> None:
    """The client's model without code calls the configured module's function; without one, a clear error."""
    request = FlashRequest(function_name="greet", args=serialize_args(("pod",)))
    with RemoteExecutor(FlashConfig(functions_module=deployed)) as configured:
        assert _decoded(configured.execute_sync(request.model_dump(exclude_none=True)).model_dump()) == (
            "Hello, pod!"
        )
    with RemoteExecutor(FlashConfig()) as plain:
        answer = plain.execute_sync(request.model_dump(exclude_none=True))
    assert answer.success is False
    assert "this worker has no FLASH_FUNCTIONS_MODULE" in (answer.error or "")


def test_deployed_class_and_bad_names(deployed: str) -> None:
    """A deployed class is built from the functions module; a name that is not an identifier is refused."""
    greeter = FlashRequest(
        execution_type="class",
        class_name="Greeter",
        method_name="greet",
        constructor_args=serialize_args(("Hi",)),
        args=serialize_args(("class",)),
    )
    sneaky = FlashRequest(function_name="greet; import os")
    with RemoteExecutor(FlashConfig(functions_module=deployed)) as executor:
        assert (
            _decoded(executor.execute_sync(greeter.model_dump(exclude_none=True)).model_dump())
            == "Hi, class!"
        )
        refused = executor.execute_sync(sneaky.model_dump(exclude_none=True))
    assert refused.success is False
    assert refused.error == "function_name 'greet; import os' is not a Python identifier"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("execution_type", "klass", "execution_type: Input should be 'function' or 'class'"),
        ("serialization_format", "yaml", "serialization_format: Input should be 'cloudpickle' or 'json'"),
    ],
)
def test_http_worker_answers_model_valid_requests_200(
    compute: Callable[..., Any], executor: RemoteExecutor, field: str, value: str, error: str
) -> None:
    """Over HTTP a request the client's model accepts is answered 200 with success false, never 422."""
    payload = {**_prepared(compute, 1).model_dump(exclude_none=True), field: value}
    with serving(create_app(executor)) as url:
        response = httpx.post(f"{url}/execute", json=payload, timeout=60)
    assert response.status_code == 200
    assert response.json()["success"] is False
    with pytest.raises(Exception, match=f"Remote execution failed: invalid request: {error}"):
        _decoded(response.json())


def test_http_worker_runs_the_load_balancer_stubs_requests(
    compute: Callable[..., Any], deployed: str, telemetry: Any
) -> None:
    """The load-balancer stub's own request builder, HTTP call and decoder: modules and deployed mode."""
    config = FlashConfig(functions_module=deployed)
    with (
        RemoteExecutor(
            config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
        ) as executor,
        serving(create_app(executor)) as url,
    ):
        stub = LoadBalancerSlsStub(LoopbackEndpoint("otel-flash", url))
        request = asyncio.run(stub._prepare_request(compute, None, None, True, 4))
        assert stub._handle_response(asyncio.run(stub._execute_function(request))) == 8
        bare = FlashRequest(function_name="greet", args=serialize_args(("lb",))).model_dump(exclude_none=True)
        assert stub._handle_response(asyncio.run(stub._execute_function(bare))) == "Hello, lb!"


def _run_job(script: Path, payload: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    """One job in runpod's local test mode; the process's stdout is the container log."""
    return _test_input(script, json.dumps({"input": payload}), **env)


def test_runpod_handler_runs_modules_and_deployed_requests(
    compute: Callable[..., Any], deployed: str, script: Path
) -> None:
    """Under runpod's own job runner the client's `modules` request and a deployed one both round-trip."""
    done = _run_job(script, _prepared(compute, 5).model_dump(exclude_none=True))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _decoded(_job_result(done.stdout)["output"]) == 10
    bare = FlashRequest(function_name="greet", args=serialize_args(("job",))).model_dump(exclude_none=True)
    done = _run_job(script, bare, FLASH_FUNCTIONS_MODULE=deployed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _decoded(_job_result(done.stdout)["output"]) == "Hello, job!"


def _shown(container_log: list[str], stdout: str) -> list[str]:
    """What the stock client prints: the live log lines, then `stdout` minus the lines already shown.

    The pieces are runpod-flash's own (its log fetcher's line extraction, its display
    formatter, its normaliser); the counting loop restates ServerlessResource's, which
    is inline in a method that needs RunPod's API.
    """
    fetcher = QBRequestLogFetcher()
    live = fetcher._extract_lines({"container": container_log})
    shown = [line for raw in live if (line := _format_worker_log_line(raw)) is not None]
    seen = Counter(norm for line in fetcher.seen if (norm := _normalize_stream_log_line(line)))
    for raw in stdout.splitlines():
        norm = _normalize_stream_log_line(raw)
        if norm and seen.get(norm, 0) > 0:
            seen[norm] -= 1
            continue
        shown.append(raw)
    return shown


@pytest.mark.parametrize("stamped", [True, False], ids=["log-view-timestamps", "bare"])
def test_stock_client_shows_every_line_once(compute: Callable[..., Any], script: Path, stamped: bool) -> None:
    """Echoed lines are shown live and dropped from the final stdout: each line once, none twice."""
    done = _run_job(script, _prepared(compute, 3).model_dump(exclude_none=True))
    assert done.returncode == 0, done.stdout + done.stderr
    stdout = _job_result(done.stdout)["output"]["stdout"]
    echoed = [
        line for line in done.stdout.splitlines() if line in ("| INFO | computing 3", "the answer follows")
    ]
    assert echoed == ["| INFO | computing 3", "the answer follows"]
    log = [
        f"2026-11-28T11:15:25.{index:09d}Z {line}" if stamped else line for index, line in enumerate(echoed)
    ]
    shown = _shown(log, stdout)
    assert shown[:2] == ["| INFO | computing 3", "the answer follows"]
    assert len(shown) == 3 and shown[2].startswith("REPORT ")


def test_echo_off_keeps_the_container_log_quiet(compute: Callable[..., Any], script: Path) -> None:
    """FLASH_ECHO_LINES=off writes no execution line to the container's stdout."""
    done = _run_job(script, _prepared(compute, 3).model_dump(exclude_none=True), FLASH_ECHO_LINES="off")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _job_result(done.stdout)["output"]["success"] is True
    assert "the answer follows" not in done.stdout.splitlines()


def test_handler_round_trips_through_the_clients_queue_stub(
    compute: Callable[..., Any], runpod_api: str
) -> None:
    """LiveServerlessStub.ExecuteFunction, unchanged, on `handler` behind runpod's local API."""
    stub = LiveServerlessStub(_LocalQueue(runpod_api))  # a stand-in resource
    response = asyncio.run(stub.ExecuteFunction(_prepared(compute, 8), sync=True))
    assert stub.handle_response(response) == 16


@pytest.mark.parametrize("runpod_api", ["stream"], indirect=True)
def test_stream_handler_output_is_what_the_client_cannot_decode(
    compute: Callable[..., Any], runpod_api: str
) -> None:
    """With return_aggregate_stream the job output is a list: the stock client reports the call failed."""
    stub = LiveServerlessStub(_LocalQueue(runpod_api))
    response = asyncio.run(stub.ExecuteFunction(_prepared(compute, 8), sync=True))
    assert response.success is False
    assert "argument after ** must be a mapping, not list" in (response.error or "")
