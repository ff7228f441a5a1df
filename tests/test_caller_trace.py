"""The caller's trace through the stock runpod-flash load-balancer client, with zero changes on either side.

The caller instruments httpx with the stock ``opentelemetry-instrumentation-httpx``;
runpod-flash's own ``LoadBalancerSlsStub`` POSTs the request to our worker's
``/execute`` (real uvicorn on loopback), and the worker continues the trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from otel_flash import RemoteExecutor
from otel_flash.server import create_app
from otel_flash.testing import TelemetryCapture, capture_telemetry
from tests.test_server import serving


def squared_sum(values: list[int]) -> int:
    """The function the caller runs remotely (runpod-flash ships its source)."""
    import logging

    logging.getLogger("caller.function").info("summing %d squares", len(values))
    return sum(value * value for value in values)


@dataclass
class LoopbackEndpoint:
    """What the stub reads of a ``LoadBalancerSlsResource``: a name and the endpoint's base URL."""

    name: str
    endpoint_url: str


@pytest.fixture
def caller() -> Iterator[TelemetryCapture]:
    """The caller's own providers, with httpx instrumented by the stock instrumentation."""
    capture = capture_telemetry()
    HTTPXClientInstrumentor().instrument(tracer_provider=capture.tracer_provider)
    yield capture
    HTTPXClientInstrumentor().uninstrument()
    capture.shutdown()


@pytest.mark.asyncio
async def test_worker_continues_the_trace_of_the_stock_load_balancer_client(
    caller: TelemetryCapture, executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """flash.execute joins the caller's trace under the httpx CLIENT span that carried the call."""
    # Imported here: importing runpod_flash sets up the root logger; the suite restores it after a test
    from runpod_flash.stubs.load_balancer_sls import LoadBalancerSlsStub

    with serving(create_app(executor)) as url:
        stub = LoadBalancerSlsStub(LoopbackEndpoint("loopback", url), timeout=60)
        tracer = caller.tracer_provider.get_tracer("caller")
        with tracer.start_as_current_span("caller.work") as work:
            result = await stub(squared_sum, None, None, False, [1, 2, 3])
    assert result == 14
    # the CLIENT span of the call (serving()'s own /ping polls are CLIENT spans of other traces)
    work_id = work.get_span_context().span_id
    [client] = [
        span
        for span in caller.spans()
        if span.kind == SpanKind.CLIENT and span.parent is not None and span.parent.span_id == work_id
    ]
    assert client.context is not None
    root = telemetry.span("flash.execute")
    assert root.context is not None and root.parent is not None
    assert format_trace_id(root.context.trace_id) == format_trace_id(client.context.trace_id)
    assert format_span_id(root.parent.span_id) == format_span_id(client.context.span_id)
    call = telemetry.span("flash.function.call")
    [record] = [r.log_record for r in telemetry.log_records() if r.log_record.body == "summing 3 squares"]
    assert call.context is not None and (record.trace_id, record.span_id) == (
        client.context.trace_id,
        call.context.span_id,
    )
