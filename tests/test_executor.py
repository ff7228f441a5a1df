"""RemoteExecutor: results, phases as spans, class instances, and every failure answered cleanly."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otel_flash import FlashConfig, FunctionRequest, RemoteExecutor
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, pickled, unpickled

PHASES = ("flash.function.load", "flash.function.call", "flash.result.serialize")
COUNTER = """
class Counter:
    def __init__(self, start=0):
        self.value = start

    def add(self, amount=1):
        self.value += amount
        return self.value
"""


def _counter_request(instance_id: str, *, new: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "execution_type": "class",
        "class_name": "Counter",
        "class_code": COUNTER,
        "method_name": "add",
        "constructor_kwargs": {"start": 10},
        "kwargs": {"amount": 5},
        "instance_id": instance_id,
        "create_new_instance": new,
        "serialization_format": "json",
        **extra,
    }


def test_runpod_flash_cloudpickle_round_trip(executor: RemoteExecutor) -> None:
    """cloudpickled args in, a cloudpickled result out that decodes to the right value."""
    request = FunctionRequest(
        function_name="combine",
        function_code="def combine(items, factor=1):\n    return {k: v * factor for k, v in items}\n",
        args=[pickled([("a", 1), ("b", 2)])],
        kwargs={"factor": pickled(3)},
    )
    response = executor.execute_sync(request.model_dump(exclude_none=True))
    assert response.success, response.error
    assert response.result is not None
    assert unpickled(response.result) == {"a": 3, "b": 6}
    assert response.json_result is None


def test_json_format_returns_json_result(executor: RemoteExecutor) -> None:
    """serialization_format json takes plain values and answers json_result."""
    response = executor.execute_sync(function_request("def f(a, b=2):\n    return [a, b]\n", "f", 1, b=3))
    assert (response.success, response.json_result, response.result) == (True, [1, 3], None)


def test_function_span_tree(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """One flash.execute SERVER root with load, call and serialize children, in order."""
    response = executor.execute_sync(function_request("def f():\n    return 1\n", "f"))
    [root] = telemetry.span_tree()
    assert root.shape() == ("flash.execute", tuple((name, ()) for name in PHASES))
    assert root.span.kind is SpanKind.SERVER
    assert root.span.attributes is not None
    assert dict(root.span.attributes) == {
        "faas.trigger": "other",
        "faas.coldstart": True,
        "flash.execution_type": "function",
        "code.function.name": "f",
        "flash.success": True,
        "flash.log.lines": 0,
        "flash.log.omitted_lines": 0,
        "flash.log.omitted_bytes": 0,
    }
    assert telemetry.span("flash.function.call").attributes == {"code.function.name": "f"}
    assert response.trace_id == f"{root.span.context.trace_id:032x}"


def test_user_spans_nest_under_call(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """A span the user's code starts is a child of flash.function.call."""
    import tests.test_executor as this

    this.PROVIDER = telemetry.tracer_provider  # type: ignore[attr-defined]  # handed to the user code
    code = """
    import tests.test_executor as t

    def f():
        with t.PROVIDER.get_tracer("user").start_as_current_span("user.work"):
            return 1
    """
    executor.execute_sync(function_request(code, "f"))
    call = telemetry.span("flash.function.call")
    user = telemetry.span("user.work")
    assert user.parent is not None and user.parent.span_id == call.context.span_id


@pytest.mark.asyncio
async def test_async_function_is_awaited(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """A coroutine function runs to completion under the same span tree."""
    code = "import asyncio\nasync def f(x):\n    await asyncio.sleep(0)\n    return x * 2\n"
    response = await executor.execute(function_request(code, "f", 21))
    assert response.json_result == 42
    assert telemetry.span_tree()[0].shape() == ("flash.execute", tuple((name, ()) for name in PHASES))


def test_async_function_from_sync_entry_point(executor: RemoteExecutor) -> None:
    """execute_sync runs a coroutine function on a fresh event loop."""
    code = "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 'done'\n"
    assert executor.execute_sync(function_request(code, "f")).json_result == "done"


@pytest.mark.asyncio
async def test_sync_function_does_not_block_the_loop(executor: RemoteExecutor) -> None:
    """While a sync function waits, the event loop keeps running other tasks (it sets the event)."""
    import tests.test_executor as this

    gate = threading.Event()
    this.GATE = gate  # type: ignore[attr-defined]  # handed to the user code by reference
    code = "import tests.test_executor as t\ndef wait():\n    return t.GATE.wait(10)\n"
    request = FunctionRequest(function_name="wait", function_code=code)
    execution = asyncio.create_task(executor.execute(request))
    await asyncio.sleep(0.05)
    gate.set()  # runs on the loop: only possible if the loop is not blocked
    response = await execution
    assert response.success and response.result is not None and unpickled(response.result) is True


def test_class_instance_state_persists(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """Two calls with one instance_id and create_new_instance=false share state."""
    first = executor.execute_sync(_counter_request("c1"))
    second = executor.execute_sync(_counter_request("c1"))
    assert (first.json_result, second.json_result) == (15, 20)
    assert second.instance_id == "c1"
    assert second.instance_info is not None
    assert second.instance_info["class_name"] == "Counter"
    assert second.instance_info["method_calls"] == 2
    assert second.instance_info["created_at"] == first.instance_info["created_at"]  # type: ignore[index]
    roots = [node for node in telemetry.span_tree() if node.name == "flash.execute"]
    assert [root.shape() for root in roots] == [("flash.execute", tuple((name, ()) for name in PHASES))] * 2
    assert roots[-1].span.attributes is not None
    assert roots[-1].span.attributes["code.function.name"] == "Counter.add"
    assert roots[-1].span.attributes["flash.instance_id"] == "c1"


def test_create_new_instance_resets_state(executor: RemoteExecutor) -> None:
    """create_new_instance=true builds a fresh instance even for a known id."""
    executor.execute_sync(_counter_request("c2"))
    assert executor.execute_sync(_counter_request("c2", new=True)).json_result == 15


def test_instance_registry_evicts_least_recently_used(telemetry: TelemetryCapture) -> None:
    """Beyond max_instances the least recently used instance goes, and the eviction is logged."""
    with RemoteExecutor(
        FlashConfig(max_instances=2),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    ) as executor:
        executor.execute_sync(_counter_request("a"))
        executor.execute_sync(_counter_request("b"))
        executor.execute_sync(_counter_request("a"))
        third = executor.execute_sync(_counter_request("c"))
        assert "b" not in executor.instances and "a" in executor.instances
        assert "evicted instance b of Counter (registry holds at most 2)" in (third.stdout or "")


FAILURES = [
    (
        function_request("import sys\ndef f():\n    sys.exit(3)\n", "f"),
        "SystemExit: 3",
        "flash.function.call",
    ),
    (
        function_request("def g():\n    pass\n", "f"),
        "function 'f' not found in the submitted code (it defines: g)",
        "flash.function.load",
    ),
    (
        {
            **function_request("def f(x):\n    return x\n", "f"),
            "serialization_format": "cloudpickle",
            "args": ["%%"],
        },
        "args[0]: not valid base64",
        "flash.function.load",
    ),
    (
        function_request("def f():\n    return object()\n", "f"),
        "result of type object is not JSON-encodable",
        "flash.result.serialize",
    ),
    (
        {
            **function_request("import threading\ndef f():\n    return threading.Lock()\n", "f"),
            "serialization_format": "cloudpickle",
        },
        "result of type lock cannot be pickled",
        "flash.result.serialize",
    ),
    (
        function_request("def f(:\n", "f"),
        "code does not compile: invalid syntax (line 1)",
        "flash.function.load",
    ),
    (
        function_request("def f():\n    raise KeyError('missing')\n", "f"),
        "KeyError: 'missing'",
        "flash.function.call",
    ),
    ({"execution_type": "class", "class_name": "C"}, "'class_code' is required", None),
]


@pytest.mark.parametrize(("request_", "message", "phase"), FAILURES)
def test_failures_answer_cleanly_and_record_error(
    executor: RemoteExecutor,
    telemetry: TelemetryCapture,
    request_: dict[str, Any],
    message: str,
    phase: str | None,
) -> None:
    """Each failure gives success=false, a clear error, an ERROR span with the exception event."""
    response = executor.execute_sync(request_)
    assert response.success is False
    assert response.error is not None and message in response.error
    assert response.trace_id is not None and len(response.trace_id) == 32
    root = telemetry.span("flash.execute")
    assert root.status.status_code is StatusCode.ERROR
    failed = telemetry.span(phase) if phase else root
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert "execution failed" in (response.stdout or "")
    # the executor stays usable
    assert executor.execute_sync(function_request("def ok():\n    return 1\n", "ok")).json_result == 1


def test_user_error_carries_traceback_of_submitted_code(executor: RemoteExecutor) -> None:
    """The error names the line of the submitted code, with the source text, not our frames."""
    code = "def inner():\n    raise ValueError('bad value')\n\ndef f():\n    inner()\n"
    response = executor.execute_sync(function_request(code, "f"))
    assert response.error is not None
    assert response.error.startswith("ValueError: bad value\n\nTraceback (most recent call last):\n")
    assert "line 2, in inner\n    raise ValueError('bad value')" in response.error
    assert "executor.py" not in response.error


def test_log_lines_before_a_failure_stay_in_stdout(executor: RemoteExecutor) -> None:
    """Everything logged before an exception is still in stdout."""
    code = """
    import logging
    def f():
        logging.getLogger('u').warning('about to fail')
        raise RuntimeError('x')
    """
    response = executor.execute_sync(function_request(code, "f"))
    assert "| WARN | about to fail" in (response.stdout or "")


def test_executor_without_arguments_works(caplog: pytest.LogCaptureFixture) -> None:
    """RemoteExecutor() builds its own providers and still captures stdout."""
    with RemoteExecutor() as executor:
        response = executor.execute_sync(function_request("def f():\n    print('own')\n    return 7\n", "f"))
    assert response.json_result == 7
    assert (response.stdout or "").startswith("own\n")


def test_shutdown_removes_bridge_and_restores_streams(telemetry: TelemetryCapture) -> None:
    """After shutdown the root logger and sys.stdout are as before."""
    import sys

    root = logging.getLogger()
    before = (list(root.handlers), root.level, sys.stdout, sys.stderr)
    executor = RemoteExecutor(
        FlashConfig(), tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    )
    assert sys.stdout is not before[2]
    executor.shutdown()
    executor.shutdown()  # idempotent
    assert (list(root.handlers), root.level, sys.stdout, sys.stderr) == before
