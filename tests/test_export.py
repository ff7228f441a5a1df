"""OTLP export end to end over real gRPC and HTTP, and an unreachable collector never hurting an execution."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from typing import Literal

import pytest

from otel_flash import ConfigError, FlashConfig, FunctionResponse, RemoteExecutor
from otel_flash.export_settings import BatchSettings, ExportSettings, OtlpProtocol, SignalExport
from otel_flash.telemetry.providers import build_providers
from tests.otlp_receivers import BlackHole, GrpcReceiver, HttpReceiver, Received, refused_endpoint
from tests.requests import function_request, stdout_lines

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
WORK = """
import logging

def work(n):
    logging.getLogger("user").info("working on %d", n)
    print("printed", n)
    return n * 2
"""
PHASES = {"flash.function.load", "flash.function.call", "flash.result.serialize"}


def _config(export: ExportSettings) -> FlashConfig:
    return FlashConfig(
        service_name="flash-e2e", resource_attributes={"deployment.environment": "test"}
    ).replace(export=export)


def _request() -> dict[str, object]:
    request = function_request(WORK, "work", 21)
    request["trace_context"] = {
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        "baggage": "tenant=acme",
    }
    return request


# -- settings ----------------------------------------------------------------------------------


def test_export_is_off_unless_configured() -> None:
    """Without exporter or endpoint variables nothing is exported."""
    settings = ExportSettings.from_environ({})
    assert [settings.enabled(signal) for signal in ("traces", "logs", "metrics")] == [False, False, False]


def test_endpoint_turns_otlp_on_and_http_appends_signal_paths() -> None:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` enables OTLP; over HTTP each signal gets its ``/v1`` path."""
    settings = ExportSettings.from_environ(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    )
    assert settings.traces.exporter == "otlp"
    assert settings.traces.url("traces") == "http://c:4318/v1/traces"
    assert settings.metrics.url("metrics") == "http://c:4318/v1/metrics"


def test_per_signal_variables_win_over_general_ones() -> None:
    """Per-signal endpoint, timeout, headers and exporter override the general variables."""
    settings = ExportSettings.from_environ(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "500",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret,x=1",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "console",
        }
    )
    assert settings.traces == SignalExport(
        "otlp", "http://traces:4317", "grpc", {"api-key": "s=cret", "x": "1"}, timeout_s=2.5
    )
    assert (settings.logs.exporter, settings.logs.timeout_s) == ("console", 0.5)
    assert not settings.enabled("metrics")


def test_batch_and_shutdown_variables_are_read() -> None:
    """``OTEL_BSP_*``, ``OTEL_BLRP_*``, metric interval and the shutdown bound are parsed."""
    settings = ExportSettings.from_environ(
        {
            "OTEL_BSP_MAX_QUEUE_SIZE": "64",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_EXPORT_TIMEOUT": "750",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "FLASH_TELEMETRY_SHUTDOWN_TIMEOUT_S": "2",
        }
    )
    assert settings.span_batch == BatchSettings(100.0, 64, 16, 30000.0)
    assert settings.log_batch.export_timeout_ms == 750.0
    assert (settings.metric_interval_ms, settings.shutdown_timeout_s) == (1000.0, 2.0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ],
)
def test_invalid_variable_is_a_config_error_naming_it(variable: str, value: str) -> None:
    """A bad value is rejected with a ConfigError whose message names the variable."""
    with pytest.raises(ConfigError, match=variable):
        FlashConfig.from_env({variable: value})


def test_explicit_export_argument_wins_over_environment() -> None:
    """``FlashConfig.from_env(export=...)`` ignores the exporter variables."""
    explicit = ExportSettings.otlp("http://mine:4317")
    config = FlashConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317"}, export=explicit)
    assert config.export.traces.endpoint == "http://mine:4317"


# -- end to end ---------------------------------------------------------------------------------


def _receiver(protocol: OtlpProtocol) -> GrpcReceiver | HttpReceiver:
    return GrpcReceiver() if protocol == "grpc" else HttpReceiver()


def _export_one(received: Received, endpoint: str, protocol: OtlpProtocol) -> str:
    export = ExportSettings.otlp(endpoint, protocol, span_batch=BatchSettings(schedule_delay_ms=50))
    with RemoteExecutor(_config(export)) as executor:
        response = executor.execute_sync(_request())
    assert response.success, response.error
    assert received.wait_for(lambda r: "flash.execute" in r.span_names() and bool(r.logs()))
    return response.trace_id or ""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_form_the_tree_under_the_callers_span(protocol: OtlpProtocol) -> None:
    """The caller's traceparent parents ``flash.execute``; the phases are its children; one trace."""
    with _receiver(protocol) as receiver:
        trace_id = _export_one(receiver.received, receiver.endpoint, protocol)
    spans = {span.name: span for span in receiver.received.spans()}
    root = spans["flash.execute"]
    assert (trace_id, root.trace_id, root.parent_span_id) == (CALLER_TRACE, CALLER_TRACE, CALLER_SPAN)
    assert root.attributes["flash.success"] is True
    assert root.attributes["code.function.name"] == "work"
    assert spans.keys() >= PHASES
    assert {spans[name].parent_span_id for name in PHASES} == {root.span_id}
    assert {span.trace_id for span in spans.values()} == {CALLER_TRACE}


@pytest.mark.parametrize("process", [False, True], ids=["threads", "export-process"])
def test_the_callers_tracestate_is_on_every_span_of_the_execution(process: bool) -> None:
    """A W3C ``tracestate`` arriving with the caller's ``traceparent`` is exported on every span of the
    trace, as the SDK's spans carry their parent's."""
    with GrpcReceiver() as receiver:
        export = ExportSettings.otlp(receiver.endpoint, span_batch=BatchSettings(schedule_delay_ms=50))
        request = _request()
        request["trace_context"] = {
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
            "tracestate": "vendor=v1,other=o2",
        }
        with RemoteExecutor(_config(dataclasses.replace(export, process=process))) as executor:
            assert executor.execute_sync(request).success
        assert receiver.received.wait_for(lambda r: "flash.execute" in r.span_names())
    spans = receiver.received.spans()
    assert {span.name for span in spans} >= PHASES | {"flash.execute"}
    assert {span.trace_state for span in spans} == {"vendor=v1,other=o2"}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_logs_carry_the_ids_of_their_span_and_the_resource(protocol: OtlpProtocol) -> None:
    """Log and print lines arrive with the function.call span's ids and the executor's resource."""
    with _receiver(protocol) as receiver:
        _export_one(receiver.received, receiver.endpoint, protocol)
        assert receiver.received.wait_for(lambda r: {"working on 21", "printed 21"} <= _bodies(r))
    call = next(span for span in receiver.received.spans() if span.name == "flash.function.call")
    by_body = {str(log.body): log for log in receiver.received.logs()}
    for body in ("working on 21", "printed 21"):
        assert (by_body[body].trace_id, by_body[body].span_id) == (CALLER_TRACE, call.span_id)
    resource = by_body["working on 21"].resource
    assert (resource["service.name"], resource["deployment.environment"]) == ("flash-e2e", "test")
    assert call.resource == resource


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_metrics_are_exported_with_the_same_settings(protocol: OtlpProtocol) -> None:
    """Execution count, phase durations and log lines arrive at the same collector."""
    with _receiver(protocol) as receiver:
        _export_one(receiver.received, receiver.endpoint, protocol)
        assert receiver.received.wait_for(lambda r: any(m.name == "flash.executions" for m in r.metrics()))
    points = receiver.received.metrics()
    executions = [p for p in points if p.name == "flash.executions"]
    assert [(p.attributes["flash.outcome"], p.value) for p in executions] == [("success", 1)]
    phases = {p.attributes["flash.phase"] for p in points if p.name == "flash.phase.duration"}
    assert {"execute", "function.call"} <= phases
    lines = {p.attributes["flash.log.disposition"]: p.value for p in points if p.name == "flash.log.lines"}
    assert lines == {"kept": 2}
    assert executions[0].resource["service.name"] == "flash-e2e"


def _captured_user_output(response: FunctionResponse) -> bool:
    """The response's stdout holds the user's two lines and nothing else (format aside)."""
    lines = stdout_lines(response.stdout)
    return len(lines) == 2 and lines[0].endswith("working on 21") and lines[1].endswith("printed 21")


def _bodies(received: Received) -> set[str]:
    return {str(log.body) for log in received.logs()}


def test_console_exporter_writes_to_the_given_stream_not_the_response() -> None:
    """``OTEL_TRACES_EXPORTER=console`` prints spans to the injected stream, never into stdout."""
    out = io.StringIO()
    config = FlashConfig.from_env({"OTEL_TRACES_EXPORTER": "console"})
    telemetry = build_providers(config, console=out)
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        response = executor.execute_sync(_request())
    telemetry.shutdown()
    assert '"name": "flash.execute"' in out.getvalue()
    assert _captured_user_output(response)


def test_sdk_disabled_exports_nothing_but_executions_still_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_SDK_DISABLED: no export at all, yet stdout is captured and the trace id is real."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # the SDK providers read it themselves too
    with GrpcReceiver() as receiver:
        config = FlashConfig.from_env(
            {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        )
        with RemoteExecutor(config) as executor:
            response = executor.execute_sync(_request())
        assert receiver.received.requests == {"traces": [], "logs": [], "metrics": []}
    assert response.success
    assert _captured_user_output(response)
    assert response.trace_id == CALLER_TRACE


# -- a collector that is down, black-holed or slow -----------------------------------------------

Trouble = Literal["refused", "black-hole", "slow"]


def _troubled(trouble: Trouble, protocol: OtlpProtocol) -> tuple[str, object]:
    if trouble == "refused":
        return refused_endpoint(), None
    receiver = BlackHole() if trouble == "black-hole" else _receiver(protocol)
    if trouble == "slow":
        receiver.delay_s = 30.0
    receiver.start()
    return receiver.endpoint, receiver


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("trouble", ["refused", "black-hole", "slow"])
@pytest.mark.parametrize("process", [False, True], ids=["threads", "export-process"])
def test_unreachable_collector_leaves_execution_alone_and_shutdown_bounded(
    trouble: Trouble, protocol: OtlpProtocol, process: bool, internal_reports: list[str]
) -> None:
    """Refused, black-holed or slow, sent from the worker's threads or its export process: same
    response, shutdown within its bound, loss reported on stderr."""
    endpoint, receiver = _troubled(trouble, protocol)
    export = ExportSettings.otlp(
        endpoint,
        protocol,
        timeout_s=3.0,
        span_batch=BatchSettings(schedule_delay_ms=10),
        log_batch=BatchSettings(schedule_delay_ms=10),
        shutdown_timeout_s=1.0,
        process=process,
    )
    try:
        executor = RemoteExecutor(_config(export))
        responses = [executor.execute_sync(_request()) for _ in range(3)]
        started = time.monotonic()
        executor.shutdown()
        shutdown_s = time.monotonic() - started
    finally:
        if receiver is not None:
            receiver.__exit__(None, None, None)  # type: ignore[attr-defined]  # any receiver kind
    assert all(r.success for r in responses)
    assert all(_captured_user_output(r) for r in responses)
    assert shutdown_s < 5.0  # a generous bound; bench_export measures the real figure
    assert any("not exported" in message or "did not finish" in message for message in internal_reports)


def test_full_queue_drops_and_counts_without_touching_stdout(internal_reports: list[str]) -> None:
    """With the collector black-holed and a tiny queue, spans are dropped, counted and reported on stderr."""
    with BlackHole() as hole:
        export = ExportSettings.otlp(
            hole.endpoint,
            signals=("traces",),
            timeout_s=2.0,
            span_batch=BatchSettings(schedule_delay_ms=10, max_queue_size=2, max_export_batch_size=1),
            shutdown_timeout_s=0.5,
        )
        executor = RemoteExecutor(_config(export))
        responses = [executor.execute_sync(_request()) for _ in range(5)]
        executor.shutdown()
    ledger = executor.telemetry.ledgers[0]
    assert ledger.queue_full > 0
    assert any("queue is full" in message for message in internal_reports)
    assert all(_captured_user_output(r) for r in responses)


def test_a_callers_meter_provider_gets_no_idle_metric_reader_beside_it() -> None:
    """With metrics export on and the caller's meter provider, no reader of ours runs unattached."""
    from opentelemetry.sdk.metrics import MeterProvider

    def readers() -> int:
        return sum(thread.name == "OtelPeriodicExportingMetricReader" for thread in threading.enumerate())

    before = readers()
    export = ExportSettings.otlp(refused_endpoint(), signals=("metrics",), metric_interval_ms=3_600_000)
    provider = MeterProvider(shutdown_on_exit=False)
    with RemoteExecutor(FlashConfig(export=export), meter_provider=provider) as executor:
        assert executor.execute_sync(function_request("def f():\n    return 1\n", "f")).success
        assert readers() == before
    provider.shutdown()
