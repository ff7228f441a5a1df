"""`otel-flash serve` as a backend sees it: one SERVER span per execution, no traces for /ping.

One worker process (with an API key from the environment, as the Dockerfile runs it)
exports over OTLP/gRPC to a real receiver; FastAPI's own request tracing would show up
here as ``POST /execute`` / ``fastapi.*`` spans, because ``serve`` sets the global providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.otlp_receivers import GrpcReceiver, ReceivedSpan
from tests.requests import HELLO, function_request, stdout_lines
from tests.stack import ServedWorker

KEY = "serve-key-0123456789abcdef"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SPAN_KIND_SERVER = 2


@dataclass
class Worker:
    """A running `otel-flash serve` and the receiver it exports to."""

    url: str
    receiver: GrpcReceiver

    def execute(self, name: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST /execute of HELLO with the worker's key and ``headers``."""
        return httpx.post(
            f"{self.url}/execute",
            json=function_request(HELLO, "hello", name),
            headers={"Authorization": f"Bearer {KEY}", **(headers or {})},
            timeout=60,
        )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of ``trace_id`` once its flash.execute arrived."""
        received = self.receiver.received
        assert received.wait_for(
            lambda got: any(s.name == "flash.execute" and s.trace_id == trace_id for s in got.spans())
        )
        return [span for span in received.spans() if span.trace_id == trace_id]


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    """`otel-flash serve` on loopback with FLASH_API_KEY, exporting to a gRPC receiver."""
    with GrpcReceiver() as receiver:
        env = {
            "FLASH_API_KEY": KEY,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with ServedWorker(env) as served:
            yield Worker(served.url, receiver)
        assert served.process is not None and served.process.returncode == 0, served.err
        assert KEY not in served.out + served.err
        exported = [str(span.attributes) for span in receiver.received.spans()]
        exported += [str(log.body) for log in receiver.received.logs()]
        assert not [text for text in exported if KEY in text]


def test_flash_execute_is_the_one_server_span_under_the_callers_span(worker: Worker) -> None:
    """A traceparent header parents flash.execute directly; no framework span stands between."""
    response = worker.execute("traced", {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    assert response.json()["trace_id"] == CALLER_TRACE
    spans = worker.trace(CALLER_TRACE)
    servers = [span for span in spans if span.kind == SPAN_KIND_SERVER]
    assert [span.name for span in servers] == ["flash.execute"]
    assert servers[0].parent_span_id == CALLER_SPAN
    assert servers[0].attributes["http.route"] == "/execute"
    assert servers[0].attributes["http.response.status_code"] == 200
    assert servers[0].attributes["faas.trigger"] == "http"
    assert all(span.name.startswith("flash.") for span in spans), [span.name for span in spans]


def test_health_checks_make_no_traces(worker: Worker) -> None:
    """/ping answers 200 and nothing it does reaches the trace backend."""
    for _ in range(5):
        assert httpx.get(f"{worker.url}/ping", timeout=30).status_code == 200
    after = worker.execute("after-pings").json()["trace_id"]
    worker.trace(after)  # exported after the pings: anything they made would have arrived by now
    spans = worker.receiver.received.spans()
    executions = {span.trace_id for span in spans if span.name == "flash.execute"}
    others = [span.name for span in spans if span.trace_id not in executions]
    assert others == ["flash.worker.init"]  # start-up is a trace of its own; pings made none


def test_the_request_id_is_the_invocation_id(worker: Worker) -> None:
    """An X-Request-Id header becomes flash.execute's faas.invocation_id."""
    trace_id = worker.execute("with-id", {"x-request-id": "req-42"}).json()["trace_id"]
    [root] = [span for span in worker.trace(trace_id) if span.name == "flash.execute"]
    assert (root.attributes["faas.invocation_id"], root.attributes["faas.trigger"]) == ("req-42", "http")


def test_malformed_traceparent_header_gives_one_trace_and_names_the_header(worker: Worker) -> None:
    """A malformed header: one new trace with one flash.execute, and a warning naming the header."""
    body = worker.execute("bad-header", {"traceparent": "00-not-a-trace-01"}).json()
    assert any(
        line.endswith(" | WARN | ignoring malformed traceparent header '00-not-a-trace-01'")
        for line in stdout_lines(body["stdout"])
    )
    spans = worker.trace(body["trace_id"])
    assert [span.name for span in spans if span.parent_span_id == ""] == ["flash.execute"]
    assert [span.name for span in spans if span.kind == SPAN_KIND_SERVER] == ["flash.execute"]


def test_a_key_from_the_environment_guards_execute(worker: Worker) -> None:
    """With FLASH_API_KEY set, /execute without the Bearer key is 401; with it, 200."""
    response = httpx.post(f"{worker.url}/execute", json=function_request(HELLO, "hello", "x"), timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert worker.execute("keyed").json()["success"] is True
