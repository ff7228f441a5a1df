"""Light execution spans: exported as the SDK would export them, and used only when nobody else watches."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.export_settings import BatchSettings, ExportSettings
from otel_flash.telemetry.providers import build_providers
from otel_flash.telemetry.span_data import span_data
from otel_flash.telemetry.spans import LightSpan, LightTracer, light_processors
from tests.otlp_receivers import GrpcReceiver, refused_endpoint
from tests.requests import function_request

FAILING = """
def failing():
    raise ValueError("bad input")
"""
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _export(endpoint: str) -> ExportSettings:
    return ExportSettings.otlp(endpoint, signals=("traces",), span_batch=BatchSettings(schedule_delay_ms=10))


def test_light_spans_arrive_as_a_tree_with_the_failure() -> None:
    """Root in the caller's trace, phases under it, the failed call phase with ERROR status."""
    with GrpcReceiver() as receiver:
        telemetry = build_providers(FlashConfig().replace(export=_export(receiver.endpoint)))
        assert light_processors(telemetry.tracer_provider)
        request = function_request(FAILING, "failing")
        request["trace_context"] = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        with RemoteExecutor(
            tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
        ) as executor:
            response = executor.execute_sync(request)
        telemetry.shutdown()
        assert receiver.received.wait_for(lambda got: len(got.spans()) >= 3)
        spans = {span.name: span for span in receiver.received.spans()}
    assert not response.success
    root, call = spans["flash.execute"], spans["flash.function.call"]
    assert (root.trace_id, root.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert response.trace_id == CALLER_TRACE
    assert spans["flash.function.load"].parent_span_id == root.span_id
    assert call.parent_span_id == root.span_id
    assert call.status_code == 2  # ERROR
    assert {span.trace_id for span in spans.values()} == {CALLER_TRACE}
    assert root.kind == 2  # SERVER


def test_any_other_processor_or_sampler_keeps_sdk_spans() -> None:
    """A processor besides our export queues, or a non-default sampler, means full SDK spans."""
    plain = TracerProvider(shutdown_on_exit=False)
    plain.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert light_processors(plain) == ()
    sampled = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    assert light_processors(sampled) == ()


def test_light_dependency_span_carries_the_installer_facts() -> None:
    """An already-satisfied requirement: its span says skipped, and it counts as a cache hit by installer."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider([reader], shutdown_on_exit=False)
    with GrpcReceiver() as receiver:
        telemetry = build_providers(FlashConfig().replace(export=_export(receiver.endpoint)))
        request = function_request("def ok():\n    return 1\n", "ok")
        request["dependencies"] = ["pytest"]
        with RemoteExecutor(
            tracer_provider=telemetry.tracer_provider,
            logger_provider=telemetry.logger_provider,
            meter_provider=meter_provider,
        ) as executor:
            assert executor.execute_sync(request).success
        telemetry.shutdown()
        assert receiver.received.wait_for(lambda got: "flash.dependencies.python" in got.span_names())
        spans = {span.name: span for span in receiver.received.spans()}
    assert spans["flash.dependencies.python"].attributes["flash.dependencies.skipped"] is True
    installer = spans["flash.dependencies.python"].attributes["flash.dependencies.installer"]
    data = reader.get_metrics_data()
    hits = [
        dict(point.attributes or {})
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "flash.dependencies.cache_hits"
        for point in metric.data.data_points
    ]
    assert hits == [{"flash.dependencies.kind": "python", "flash.dependencies.installer": installer}]
    meter_provider.shutdown()


def test_an_executions_spans_reach_the_export_queue_together_when_its_root_ends() -> None:
    """Children that end before their root wait for it: the queue takes the whole execution at once."""
    telemetry = build_providers(FlashConfig().replace(export=_export(refused_endpoint())))
    provider = telemetry.tracer_provider
    processors = light_processors(provider)
    assert isinstance(provider, TracerProvider) and processors
    tracer = LightTracer(provider, processors)
    root = tracer.start_span("flash.execute")
    inner = trace.set_span_in_context(root)
    for name in ("flash.function.load", "flash.function.call"):
        tracer.start_span(name, inner).end()
    ledger = processors[0].ledger
    assert ledger.accepted == 0
    root.end()
    assert ledger.accepted == 3
    late = tracer.start_span("flash.result.serialize", inner)  # after its root: on its own
    late.end()
    assert ledger.accepted == 4
    telemetry.shutdown()


def test_a_light_spans_data_read_while_it_runs_is_not_kept() -> None:
    """Data read before the end is not kept: read after the end, it has the end time and later attributes."""
    telemetry = build_providers(FlashConfig().replace(export=_export(refused_endpoint())))
    provider = telemetry.tracer_provider
    processors = light_processors(provider)
    assert isinstance(provider, TracerProvider) and processors
    span = LightTracer(provider, processors).start_span("flash.execute")
    assert isinstance(span, LightSpan)
    assert span_data(span).end_time is None
    span.set_attribute("late", True)
    span.end()
    data = span_data(span)
    assert data.end_time is not None and data.attributes == {"late": True}
    assert span_data(span) is data
    telemetry.shutdown()
