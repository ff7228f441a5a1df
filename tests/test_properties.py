"""Property: whatever the payload, execute answers a FunctionResponse, and the next request is clean."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_flash import FlashConfig, FunctionResponse, RemoteExecutor
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CODE = st.sampled_from(
    [
        "def f(*a, **k):\n    print('leak-marker', a)\n    return [len(a), sorted(k)]\n",
        "def f(*a, **k):\n    print('leak-marker')\n    raise ValueError(a)\n",
        "import logging\ndef f(*a, **k):\n    logging.getLogger('x').error('leak-marker %s', k)\n",
        "def f(:\n",
        "f = 3\n",
        "import sys\ndef f(*a, **k):\n    sys.stdout.write('leak-marker partial')\n    sys.exit(a)\n",
        "async def f(*a, **k):\n    print('leak-marker')\n    return object()\n",
    ]
)
FIELDS = {
    "function_name": st.sampled_from(["f", "g", "", None]) | st.text(max_size=10),
    "function_code": CODE | st.none() | st.text(max_size=30),
    "args": st.lists(JSON, max_size=3) | JSON,
    "kwargs": st.dictionaries(st.text(max_size=8), JSON, max_size=3) | JSON,
    "execution_type": st.sampled_from(["function", "class", "klass", None]),
    "class_name": st.sampled_from(["f", "C", None]),
    "class_code": CODE | st.none(),
    "method_name": st.sampled_from(["__call__", "f", "missing"]),
    "instance_id": st.sampled_from(["i1", None]) | st.text(max_size=5),
    "create_new_instance": st.booleans() | JSON,
    "serialization_format": st.sampled_from(["json", "cloudpickle", "yaml"]),
    "dependencies": st.none() | st.lists(st.sampled_from(["--index-url=x", "", "a;rm -rf /"]), max_size=2),
    "trace_context": st.none()
    | st.dictionaries(st.sampled_from(["traceparent", "baggage"]), st.text(max_size=60)),
    "timeout_s": st.none() | st.floats(allow_nan=True) | st.integers(-1, 5),
}
PAYLOADS = (
    st.fixed_dictionaries({}, optional=FIELDS)
    | st.fixed_dictionaries({"input": st.fixed_dictionaries({}, optional=FIELDS)})
    | JSON
)
CLEAN = function_request("def clean():\n    print('clean line')\n    return 'ok'\n", "clean")


def _assert_clean(executor: RemoteExecutor) -> None:
    response = executor.execute_sync(CLEAN)
    assert response.json_result == "ok"
    assert stdout_lines(response.stdout) == ["clean line"]


def test_any_payload_gets_a_response(telemetry: TelemetryCapture) -> None:
    """execute_sync and execute never raise, and leave nothing behind for the next request."""
    config = FlashConfig(timeout_s=2.0, capture_stdio=True)
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(payload=PAYLOADS, use_async=st.booleans())
        def check(payload: Any, use_async: bool) -> None:
            response = asyncio.run(executor.execute(payload)) if use_async else executor.execute_sync(payload)
            assert isinstance(response, FunctionResponse)
            assert response.trace_id is not None and len(response.trace_id) == 32
            assert response.success or response.error
            response.model_dump_json()  # always serializable
            _assert_clean(executor)

        check()
