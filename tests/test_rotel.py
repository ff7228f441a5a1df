"""End to end through a real collector: ``otel-flash serve`` -> rotel (gRPC or http/protobuf) -> a receiver.

What a trace backend behind a collector shows: the span tree under the caller's span,
log records carrying the ids of their spans, metrics, and no execution lost while the
collector restarts.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest

from tests.otlp_receivers import GrpcReceiver, HttpReceiver, Received, ReceivedSpan
from tests.requests import HELLO, function_request
from tests.stack import RotelCollector, ServedWorker

CALLER_SPAN = "00f067aa0ba902b7"
SERVER, INTERNAL = 2, 1  # opentelemetry.proto.trace.v1.Span.SpanKind
PHASES = ("flash.function.load", "flash.function.call", "flash.result.serialize")
Protocol = Literal["grpc", "http/protobuf"]


@dataclass
class Stack:
    """A worker exporting through rotel into :attr:`received`."""

    protocol: Protocol
    worker: ServedWorker
    rotel: RotelCollector
    received: Received


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The worker -> rotel -> receiver chain, one protocol all along (worker to rotel, rotel to receiver)."""
    protocol: Protocol = request.param
    receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    rotel_protocol: Literal["grpc", "http"] = "grpc" if protocol == "grpc" else "http"
    with receiver:
        rotel = RotelCollector(receiver.endpoint, rotel_protocol, tmp_path_factory.mktemp("rotel"))
        with rotel:
            env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": rotel.endpoint(protocol),
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_SERVICE_NAME": "flash-e2e",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_BLRP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "300",
            }
            with ServedWorker(env) as worker:
                yield Stack(protocol, worker, rotel, receiver.received)


def _execute(stack: Stack, name: str = "e2e") -> tuple[str, dict[str, Any]]:
    """POST HELLO to /execute under a new caller trace; its trace id and the response body."""
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"}
    answer = httpx.post(
        f"{stack.worker.url}/execute",
        json=function_request(HELLO, "hello", name),
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return trace_id, answer.json()


def _trace(stack: Stack, trace_id: str) -> dict[str, ReceivedSpan]:
    """The spans of ``trace_id`` by name, once its flash.execute has arrived."""
    arrived = stack.received.wait_for(
        lambda got: any(s.trace_id == trace_id and s.name == "flash.execute" for s in got.spans())
    )
    assert arrived, f"flash.execute of {trace_id} never reached the receiver"
    return {span.name: span for span in stack.received.spans() if span.trace_id == trace_id}


def test_span_tree_continues_the_callers_trace(stack: Stack) -> None:
    """flash.execute (SERVER) is a child of the caller's traceparent span; phases are INTERNAL under it."""
    trace_id, body = _execute(stack)
    assert body["success"] is True and body["trace_id"] == trace_id
    spans = _trace(stack, trace_id)
    root = spans["flash.execute"]
    assert root.kind == SERVER
    assert root.resource["service.name"] == "flash-e2e"
    assert root.attributes["code.function.name"] == "hello"
    assert root.attributes["flash.success"] is True
    for phase in PHASES:
        assert (spans[phase].parent_span_id, spans[phase].kind) == (root.span_id, INTERNAL), phase
    assert spans["flash.function.call"].attributes["code.function.name"] == "hello"
    assert root.parent_span_id == CALLER_SPAN


def test_one_server_span_under_the_caller_and_none_for_ping(stack: Stack) -> None:
    """Exactly one SERVER span per execution, parented by the caller's span; /ping makes no spans."""
    ping_trace = secrets.token_hex(16)
    headers = {"traceparent": f"00-{ping_trace}-{CALLER_SPAN}-01"}
    assert httpx.get(f"{stack.worker.url}/ping", headers=headers, timeout=10).status_code == 200
    trace_id, _ = _execute(stack)
    _trace(stack, trace_id)  # its flash.execute ended after the ping's spans would have
    spans = [span for span in stack.received.spans() if span.trace_id == trace_id]
    servers = [span for span in spans if span.kind == SERVER]
    assert [(span.name, span.parent_span_id) for span in servers] == [("flash.execute", CALLER_SPAN)]
    assert servers[0].attributes["http.route"] == "/execute"
    assert not [span for span in stack.received.spans() if span.attributes.get("url.path") == "/ping"]
    assert not [span for span in stack.received.spans() if span.trace_id == ping_trace]


def test_log_records_carry_the_ids_of_their_spans(stack: Stack) -> None:
    """A logged line and a printed line arrive with the trace id and span id of flash.function.call."""
    trace_id, _ = _execute(stack, "logs")
    call = _trace(stack, trace_id)["flash.function.call"]
    wanted = {"greeting logs", "Hello, logs!"}
    assert stack.received.wait_for(lambda got: wanted <= {str(log.body) for log in got.logs()})
    records = {str(log.body): log for log in stack.received.logs() if str(log.body) in wanted}
    for record in records.values():
        assert (record.trace_id, record.span_id) == (trace_id, call.span_id)
        assert record.severity_text == "INFO"
        assert record.resource["service.name"] == "flash-e2e"
    assert records["Hello, logs!"].attributes["log.iostream"] == "stdout"


def test_metrics_arrive(stack: Stack) -> None:
    """The execution counter and the phase-duration histogram reach the receiver through the collector."""
    _execute(stack, "metrics")

    def counted(got: Received) -> bool:
        points = got.metrics()
        executions = [p for p in points if p.name == "flash.executions" and p.value >= 1]
        durations = [p for p in points if p.name == "flash.phase.duration" and p.value >= 1]
        return bool(executions and durations)

    assert stack.received.wait_for(counted)
    point = next(p for p in stack.received.metrics() if p.name == "flash.executions")
    assert point.resource["service.name"] == "flash-e2e"


def test_restarting_the_collector_loses_no_execution(stack: Stack) -> None:
    """With the collector stopped every request still succeeds; after its restart export resumes."""
    before, _ = _execute(stack, "before")
    _trace(stack, before)
    stack.rotel.stop()
    try:
        during = [_execute(stack, f"during{i}") for i in range(5)]
    finally:
        stack.rotel.start()
    after = [_execute(stack, f"after{i}") for i in range(3)]
    assert all(body["success"] for _, body in during + after)
    assert [body["json_result"] for _, body in after] == [
        "Hello, after0!",
        "Hello, after1!",
        "Hello, after2!",
    ]
    for trace_id, _ in after:
        assert _trace(stack, trace_id)["flash.execute"].attributes["flash.success"] is True
