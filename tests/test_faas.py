"""The FaaS conventions on flash.execute, the cold start in the REPORT line, the worker.init span."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.integrations.runpod import RunPodWorker
from otel_flash.telemetry.faas import worker_init
from otel_flash.testing import TelemetryCapture
from tests.otlp_receivers import HttpReceiver
from tests.requests import HELLO, function_request
from tests.test_runpod import _test_input
from tests.test_runpod import script as script  # a fixture, used by name


@pytest.fixture
def runpod_worker(telemetry: TelemetryCapture) -> Iterator[RunPodWorker]:
    """A RunPod worker whose executor exports into memory."""

    def factory() -> RemoteExecutor:
        return RemoteExecutor(
            FlashConfig(echo_lines="off"),
            tracer_provider=telemetry.tracer_provider,
            logger_provider=telemetry.logger_provider,
        )

    worker = RunPodWorker(factory)
    yield worker
    worker.shutdown()


def test_only_the_first_execution_is_a_cold_start(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """faas.coldstart is true on the first execution only; its REPORT line says coldstart=true."""
    first, second = (executor.execute_sync(function_request(HELLO, "hello", "x")) for _ in range(2))
    roots = [span for span in telemetry.spans() if span.name == "flash.execute"]
    assert [(span.attributes or {})["faas.coldstart"] for span in roots] == [True, False]
    assert (first.stdout or "").splitlines()[-1].endswith(" coldstart=true")
    assert "coldstart" not in (second.stdout or "").splitlines()[-1]


def test_a_library_call_is_triggered_by_other(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """Without an entry point saying otherwise, faas.trigger is `other` and there is no invocation id."""
    executor.execute_sync(function_request(HELLO, "hello", "x"))
    attributes = telemetry.span("flash.execute").attributes or {}
    assert attributes["faas.trigger"] == "other"
    assert "faas.invocation_id" not in attributes


@pytest.mark.asyncio
async def test_a_runpod_job_is_a_pubsub_invocation(
    runpod_worker: RunPodWorker, telemetry: TelemetryCapture
) -> None:
    """Under the RunPod handler the job id is faas.invocation_id and faas.trigger is pubsub."""
    await runpod_worker.handle({"id": "job-7", "input": function_request(HELLO, "hello", "x")})
    attributes = telemetry.span("flash.execute").attributes or {}
    assert (attributes["faas.invocation_id"], attributes["faas.trigger"]) == ("job-7", "pubsub")


def test_worker_init_is_a_trace_of_its_own(telemetry: TelemetryCapture) -> None:
    """flash.worker.init wraps start-up as a root span; what starts inside nests under it."""
    tracer = telemetry.tracer_provider.get_tracer("t")
    with worker_init(telemetry.tracer_provider, start_time=1_000), tracer.start_as_current_span("zygote"):
        pass
    [root] = telemetry.span_tree()
    assert root.shape() == ("flash.worker.init", (("zygote", ()),))
    assert root.span.parent is None and root.span.start_time == 1_000


def test_the_runpod_worker_exports_its_start_up_and_a_cold_job(script: Path) -> None:
    """Under runpod's job runner: a flash.worker.init trace, then a cold pubsub job with its id."""
    job = json.dumps({"input": function_request(HELLO, "hello", "otlp")})
    with HttpReceiver() as receiver:
        done = _test_input(
            script,
            job,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert receiver.received.wait_for(
            lambda r: {"flash.worker.init", "flash.execute"} <= set(r.span_names())
        )
    spans = {span.name: span for span in receiver.received.spans()}
    init, root = spans["flash.worker.init"], spans["flash.execute"]
    assert init.parent_span_id == "" and init.trace_id != root.trace_id
    assert {
        key: root.attributes[key] for key in ("faas.coldstart", "faas.trigger", "faas.invocation_id")
    } == {
        "faas.coldstart": True,
        "faas.trigger": "pubsub",
        "faas.invocation_id": "local_test",
    }
