"""The HTTP worker, served by a real uvicorn on a free loopback port and driven with httpx."""

from __future__ import annotations

import gc
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_flash import ConfigError, FlashConfig, RemoteExecutor
from otel_flash.http.limits import uvicorn_options
from otel_flash.server import create_app
from otel_flash.testing import TelemetryCapture
from tests.requests import HELLO, function_request, stdout_lines

# Logs, then blocks until the test creates ``gate``, then logs ``lines`` more lines and
# writes ``done``: the test decides when the function returns, no timing involved.
GATED = """
import logging, os, time

def gated(gate, done, lines=1):
    log = logging.getLogger("gated")
    log.info("before the gate")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.01)
    for i in range(lines):
        log.info("after the gate %d", i)
    with open(done, "w") as f:
        f.write("done")
    return "opened"
"""
TAGGED = """
import logging

def tagged(tag):
    for i in range(30):
        logging.getLogger("tagged").info("%s line %d", tag, i)
        print(f"{tag} print {i}")
    return tag
"""
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
JSON_HEADERS = {"content-type": "application/json"}


@contextmanager
def serving(
    app: FastAPI, config: FlashConfig | None = None, *, ready: bool = True, **overrides: Any
) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread on a free 127.0.0.1 port; yield its base URL.

    uvicorn gets ``serve``'s limits from ``config`` (``overrides`` replace some); with
    ``ready`` the URL is yielded once ``/ping`` answers 200 (the worker initialised).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = {**uvicorn_options(config or FlashConfig()), **overrides}
    settings = uvicorn.Config(app, log_config=None, lifespan="on", loop="asyncio", ws="none", **options)
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: server.started or not thread.is_alive(), "the server to start")
        assert server.started, "uvicorn did not start"
        if ready:
            _wait_for(lambda: httpx.get(f"{url}/ping", timeout=30).status_code == 200, "the worker")
        yield url
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def _wait_for(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def base_url(executor: RemoteExecutor) -> Iterator[str]:
    """A worker on the in-memory ``executor``, with a small body limit."""
    with serving(create_app(executor, max_body_bytes=64 << 10)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the worker."""
    with httpx.Client(base_url=base_url, timeout=60) as instance:
        yield instance


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line:
            yield json.loads(line)


def test_execute_answers_the_function_response(client: httpx.Client) -> None:
    """POST /execute runs a plain request and answers its FunctionResponse with the captured lines."""
    response = client.post("/execute", json=function_request(HELLO, "hello", "world"))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["json_result"] == "Hello, world!"
    lines = stdout_lines(body["stdout"])
    assert lines[0].endswith(" | INFO | greeting world")
    assert lines[1] == "Hello, world!"


def test_runpod_envelope_in_gives_output_envelope_out(
    client: httpx.Client, telemetry: TelemetryCapture
) -> None:
    """A {"input": ...} body is answered as {"output": ...}; its job id lands on flash.execute."""
    request = {"input": function_request(HELLO, "hello", "pod"), "id": "job-7"}
    response = client.post("/execute", json=request, headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["output"]
    assert body["output"]["json_result"] == "Hello, pod!"
    attributes = telemetry.span("flash.execute").attributes or {}
    assert attributes["flash.job_id"] == "job-7"
    assert attributes["flash.request_id"] == "req-1"


def test_traceparent_header_continues_the_callers_trace(
    client: httpx.Client, telemetry: TelemetryCapture
) -> None:
    """A W3C traceparent header makes flash.execute a child of the caller's span."""
    response = client.post(
        "/execute", json=function_request(HELLO, "hello", "x"), headers={"traceparent": TRACEPARENT}
    )
    assert response.json()["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    root = telemetry.span("flash.execute")
    assert root.parent is not None
    assert root.parent.span_id == 0xB7AD6B7169203331


def test_trace_context_field_wins_over_the_header(client: httpx.Client) -> None:
    """When the request carries trace_context, the traceparent header is ignored."""
    own = "00-11111111111111111111111111111111-2222222222222222-01"
    request = {**function_request(HELLO, "hello", "x"), "trace_context": {"traceparent": own}}
    response = client.post("/execute", json=request, headers={"traceparent": TRACEPARENT})
    assert response.json()["trace_id"] == "11111111111111111111111111111111"


def test_user_code_failure_is_200_with_success_false(client: httpx.Client) -> None:
    """An exception in user code is a normal response: 200, success false, the error named."""
    code = "def divide(a, b):\n    return a / b\n"
    response = client.post("/execute", json=function_request(code, "divide", 1, 0))
    assert response.status_code == 200
    assert response.json()["success"] is False
    assert "ZeroDivisionError" in response.json()["error"]


def test_malformed_json_is_400_with_the_parse_error(client: httpx.Client) -> None:
    """A body that is not JSON gets 400 and says where parsing failed."""
    response = client.post(
        "/execute", content=b'{"function_name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("malformed JSON: ")


def test_invalid_request_is_422_naming_the_field(client: httpx.Client) -> None:
    """JSON that is not a valid request gets 422 with the request error's message."""
    response = client.post("/execute/stream", json={"function_code": "x = 1"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "invalid request: 'function_name' is required for execution_type 'function'"
    }


def test_json_that_is_not_an_object_is_422(client: httpx.Client) -> None:
    """A JSON array or string is not a request."""
    response = client.post("/execute", json=["function_name"])
    assert response.status_code == 422
    assert response.json() == {"detail": "request must be a JSON object, got list"}


def test_declared_body_over_the_limit_is_413(client: httpx.Client) -> None:
    """A Content-Length over max_body_bytes is refused with 413 before the body is read."""
    response = client.post("/execute", content=b" " * (65 << 10), headers=JSON_HEADERS)
    assert response.status_code == 413
    assert "over the limit of 65536 bytes" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    """A chunked body without Content-Length is cut off with 413 once it passes the limit."""

    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    response = client.post("/execute", content=chunks(), headers=JSON_HEADERS)
    assert response.status_code == 413


def test_stream_sends_lines_then_the_response(client: httpx.Client) -> None:
    """POST /execute/stream is NDJSON: one log event per captured line, in order, then the response."""
    with client.stream("POST", "/execute/stream", json=function_request(HELLO, "hello", "s")) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        events = list(_events(response))
    *logs, last = events
    assert [event["type"] for event in logs] == ["log", "log"]
    assert logs[0]["line"].endswith(" | INFO | greeting s")
    assert logs[1] == {"type": "log", "line": "Hello, s!"}
    assert last["type"] == "response"
    assert last["response"]["json_result"] == "Hello, s!"
    assert stdout_lines(last["response"]["stdout"]) == [event["line"] for event in logs]


def test_stream_line_arrives_before_the_function_returns(client: httpx.Client, tmp_path: Path) -> None:
    """The first line reaches the client while the function is still blocked on the test's gate."""
    gate, done = tmp_path / "gate", tmp_path / "done"
    request = function_request(GATED, "gated", str(gate), str(done))
    with client.stream("POST", "/execute/stream", json=request) as response:
        events = _events(response)
        first = next(events)
        assert first["line"].endswith(" | INFO | before the gate")
        assert not done.exists()
        gate.touch()
        rest = list(events)
    assert rest[0]["line"].endswith(" | INFO | after the gate 0")
    assert rest[-1]["response"]["json_result"] == "opened"


def test_ping_answers_while_a_sync_function_blocks(client: httpx.Client, tmp_path: Path) -> None:
    """GET /ping is answered while sync user code holds a worker thread."""
    gate, done = tmp_path / "gate", tmp_path / "done"
    request = function_request(GATED, "gated", str(gate), str(done))
    with client.stream("POST", "/execute/stream", json=request) as response:
        events = _events(response)
        next(events)  # the function is now running and blocked
        with httpx.Client(base_url=str(client.base_url), timeout=60) as other:
            ping = other.get("/ping")
        assert not done.exists()
        gate.touch()
        final = list(events)[-1]
    assert ping.status_code == 200
    assert ping.json() == {"status": "healthy", "abandoned_threads": 0}
    assert final["response"]["success"] is True


def test_client_disconnect_does_not_stop_the_execution(
    base_url: str, telemetry: TelemetryCapture, tmp_path: Path
) -> None:
    """A stream client that leaves mid-stream: the execution still completes and the worker serves on."""
    gate, done = tmp_path / "gate", tmp_path / "done"
    request = function_request(GATED, "gated", str(gate), str(done), lines=200)
    with (
        httpx.Client(base_url=base_url, timeout=60) as leaving,
        leaving.stream("POST", "/execute/stream", json=request) as response,
    ):
        next(_events(response))
    _wait_for(
        lambda: any("client went away" in body for body in telemetry.log_bodies()),
        "the server to notice the disconnect",
    )
    assert not done.exists()
    gate.touch()  # the client is gone; 200 more lines are emitted with nobody reading
    _wait_for(done.exists, "the orphaned execution to finish")
    _wait_for(lambda: any(s.name == "flash.execute" for s in telemetry.spans()), "its flash.execute span")
    assert (telemetry.span("flash.execute").attributes or {})["flash.success"] is True
    with httpx.Client(base_url=base_url, timeout=60) as client:
        assert client.get("/ping").status_code == 200
        after = client.post("/execute", json=function_request(HELLO, "hello", "again"))
    assert after.json()["json_result"] == "Hello, again!"


def test_concurrent_requests_keep_their_own_lines(client: httpx.Client) -> None:
    """Concurrent plain and streamed requests each get only their own lines."""

    def plain(tag: str) -> list[str]:
        body = client.post("/execute", json=function_request(TAGGED, "tagged", tag)).json()
        return stdout_lines(body["stdout"])

    def streamed(tag: str) -> list[str]:
        with client.stream("POST", "/execute/stream", json=function_request(TAGGED, "tagged", tag)) as r:
            return [event["line"] for event in _events(r) if event["type"] == "log"]

    with ThreadPoolExecutor(8) as pool:
        futures = {f"t{i}": pool.submit(plain if i % 2 else streamed, f"t{i}") for i in range(8)}
        results = {tag: future.result() for tag, future in futures.items()}
    for tag, lines in results.items():
        assert len(lines) == 60
        assert all(f"{tag} " in line for line in lines), (tag, lines)


def test_shutdown_flushes_an_injected_executors_telemetry() -> None:
    """Stopping the server flushes spans a batch processor still holds."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=3_600_000))
    with RemoteExecutor(FlashConfig(), tracer_provider=provider) as executor:
        with serving(create_app(executor)) as url:
            httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "b"), timeout=60)
            held = [span.name for span in spans.get_finished_spans()]
        flushed = [span.name for span in spans.get_finished_spans()]
    provider.shutdown()
    assert "flash.execute" not in held
    assert "flash.execute" in flushed


def test_app_without_executor_creates_and_shuts_down_its_own() -> None:
    """Without an injected executor the app builds one at start-up and removes its bridge at shutdown."""
    root = logging.getLogger()
    before = list(root.handlers)
    with serving(create_app(config=FlashConfig())) as url:
        response = httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "own"), timeout=60)
        during = list(root.handlers)
    assert response.json()["success"] is True
    assert len(during) == len(before) + 1
    assert root.handlers == before


def test_an_app_owning_its_process_freezes_what_is_alive_once_ready() -> None:
    """serve's app (own_process) takes the start-up heap out of garbage collection; other apps do not."""
    assert gc.get_freeze_count() == 0
    try:
        with serving(create_app(config=FlashConfig())):
            assert gc.get_freeze_count() == 0
        with serving(create_app(config=FlashConfig(), own_process=True)) as url:
            response = httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "own"), timeout=60)
            assert gc.get_freeze_count() > 0
        assert response.json()["success"] is True
    finally:
        gc.unfreeze()


def test_max_body_bytes_must_be_positive() -> None:
    """A zero body limit is a configuration error, raised when the app is built."""
    from otel_flash import ConfigError

    with pytest.raises(ConfigError, match="max_body_bytes must be at least 1"):
        create_app(config=FlashConfig(), max_body_bytes=0)


# Undecodable bytes in a file name come back from os.listdir as lone surrogates.
SURROGATE = """
import logging, os

def odd(fail=False):
    name = os.fsdecode(b"report-\\xff.txt")
    print(name)
    logging.getLogger("odd").info("file %s", name)
    if fail:
        raise ValueError(name)
    return name
"""
SHOWN = "report-\ufffd.txt"


def _strict_json(content: bytes) -> Any:
    """Parse as a strict consumer would: valid UTF-8, no lone surrogate anywhere."""
    body = json.loads(content.decode("utf-8"))
    json.dumps(body, ensure_ascii=False).encode("utf-8")
    return body


@pytest.mark.parametrize("fail", [False, True])
def test_lone_surrogates_are_answered_as_valid_json(client: httpx.Client, fail: bool) -> None:
    """A lone surrogate in the result, the error or a line: 200, valid JSON, stdout and trace_id kept."""
    response = client.post("/execute", json=function_request(SURROGATE, "odd", fail))
    assert response.status_code == 200
    body = _strict_json(response.content)
    assert body["success"] is not fail
    assert SHOWN in (body["error"] if fail else body["json_result"])
    assert stdout_lines(body["stdout"])[0] in (SHOWN, "report-\\udcff.txt")
    assert len(body["trace_id"]) == 32
    assert client.post("/execute", json=function_request(HELLO, "hello", "next")).json()["success"]


def test_lone_surrogates_in_a_stream_still_end_with_the_response(client: httpx.Client) -> None:
    """The NDJSON stream carries the odd line and always ends with its response event."""
    with client.stream("POST", "/execute/stream", json=function_request(SURROGATE, "odd")) as response:
        events = [_strict_json(line.encode()) for line in response.iter_lines() if line]
    assert events[0]["line"] in (SHOWN, "report-\\udcff.txt")
    assert events[-1]["type"] == "response"
    assert events[-1]["response"]["json_result"] == SHOWN


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"function_name": "f", "args": [' + "7" * 6000 + "]}", "Exceeds the limit (4300 digits)"),
        ('{"function_name": "f", "args": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ],
    ids=["6000-digit-integer", "nested-5000-deep"],
)
def test_hostile_json_bodies_are_400_with_a_message(client: httpx.Client, body: str, message: str) -> None:
    """A huge integer or very deep nesting is a client error, never a 500; the worker serves on."""
    response = client.post("/execute", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("malformed JSON: ")
    assert message in response.json()["detail"]
    assert client.post("/execute", json=function_request(HELLO, "hello", "on")).json()["success"]


def test_ping_is_204_while_initialising_and_execute_503(telemetry: TelemetryCapture) -> None:
    """Until the executor is built /ping answers 204 and /execute 503; then 200 and executions run."""
    gate = threading.Event()

    def slow(config: FlashConfig) -> RemoteExecutor:
        gate.wait(60)
        return RemoteExecutor(
            config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
        )

    with serving(create_app(config=FlashConfig(), make_executor=slow), ready=False) as url:
        ping = httpx.get(f"{url}/ping", timeout=30)
        early = httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "e"), timeout=30)
        gate.set()
        _wait_for(lambda: httpx.get(f"{url}/ping", timeout=30).status_code == 200, "readiness")
        after = httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "r"), timeout=60)
    assert (ping.status_code, ping.content) == (204, b"")
    assert early.status_code == 503
    assert early.json() == {"detail": "the worker is still initialising; retry once GET /ping answers 200"}
    assert early.headers["retry-after"] == "1"
    assert after.json()["json_result"] == "Hello, r!"


def test_a_failed_initialisation_is_503_on_ping_and_execute() -> None:
    """An executor that cannot be built leaves a worker that says so on /ping and /execute."""

    def broken(_config: FlashConfig) -> RemoteExecutor:
        raise ConfigError("no zygote today")

    with serving(create_app(config=FlashConfig(), make_executor=broken), ready=False) as url:
        _wait_for(lambda: httpx.get(f"{url}/ping", timeout=30).status_code != 204, "the failure")
        ping = httpx.get(f"{url}/ping", timeout=30)
        execute = httpx.post(f"{url}/execute", json=function_request(HELLO, "hello", "x"), timeout=30)
    assert ping.status_code == 503
    assert ping.json() == {"status": "failed", "error": "ConfigError"}
    assert execute.status_code == 503
    assert execute.json()["detail"] == "the worker failed to initialise: ConfigError: no zygote today"


def test_a_process_mode_executor_is_ready_once_its_zygote_imported() -> None:
    """wait_ready (what /ping's readiness waits for) returns True once the zygote can fork."""
    with RemoteExecutor(FlashConfig(isolation="process")) as executor:
        assert executor.wait_ready(60) is True


@pytest.mark.parametrize("route", ["/execute", "/execute/stream"])
def test_flash_execute_is_the_one_server_span_with_http_attributes(
    base_url: str, telemetry: TelemetryCapture, route: str
) -> None:
    """flash.execute is the only SERVER span, child of the caller's span, with HTTP semconv attributes."""
    headers = {"traceparent": TRACEPARENT, "user-agent": "probe/1.0"}
    answer = httpx.post(f"{base_url}{route}", json=function_request(HELLO, "hello", "a"), headers=headers)
    assert answer.status_code == 200
    root = telemetry.span("flash.execute")
    assert [span.name for span in telemetry.spans() if span.kind == SpanKind.SERVER] == ["flash.execute"]
    assert root.parent is not None and root.parent.span_id == 0xB7AD6B7169203331
    port = int(base_url.rsplit(":", 1)[1])
    assert (
        dict(root.attributes or {}).items()
        >= {
            "http.request.method": "POST",
            "http.route": route,
            "http.response.status_code": 200,
            "url.path": route,
            "url.scheme": "http",
            "server.address": "127.0.0.1",
            "server.port": port,
            "user_agent.original": "probe/1.0",
            "client.address": "127.0.0.1",
        }.items()
    )


def test_malformed_traceparent_header_warns_naming_the_header(
    client: httpx.Client, telemetry: TelemetryCapture
) -> None:
    """A malformed traceparent header starts one new trace and the warning names the header."""
    response = client.post(
        "/execute", json=function_request(HELLO, "hello", "m"), headers={"traceparent": "00-garbage-01"}
    )
    body = response.json()
    assert body["success"] is True
    assert any(
        line.endswith(" | WARN | ignoring malformed traceparent header '00-garbage-01'")
        for line in stdout_lines(body["stdout"])
    )
    assert {format(span.context.trace_id, "032x") for span in telemetry.spans()} == {body["trace_id"]}


@pytest.mark.parametrize("route", ["/execute", "/execute/stream"])
def test_a_request_runpod_flash_accepts_is_answered_200(client: httpx.Client, route: str) -> None:
    """A model-valid request we cannot run (deployed, no functions module) gets 200 and success false."""
    response = client.post(route, json={"input": {"function_name": "f", "serialization_format": "json"}})
    assert response.status_code == 200
    last = json.loads(response.text.splitlines()[-1])
    answer = last["output"] if route == "/execute" else last["response"]
    assert answer["success"] is False
    assert "'function_code' is required for execution_type 'function'" in answer["error"]


def test_execute_answers_other_methods_405(client: httpx.Client) -> None:
    """GET /execute is 405 naming POST, with a JSON detail like every other refusal."""
    response = client.get("/execute")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"detail": "Method Not Allowed"}


def test_the_api_schema_lists_every_route() -> None:
    """With http_docs, /openapi.json documents /execute, /execute/stream and /ping."""
    with serving(create_app(config=FlashConfig(http_docs=True))) as url:
        schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/execute", "/execute/stream", "/ping"} <= set(schema["paths"])
    assert schema["paths"]["/execute"]["post"]["summary"] == "Run one FunctionRequest"
