"""Hostile and broken input: each answered clearly, and the worker intact for the next request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, pickled, stdout_lines

OK = function_request(
    "import logging\ndef ok():\n    logging.getLogger('ok').info('still here')\n    print('p')\n", "ok"
)


def _still_works(executor: RemoteExecutor) -> None:
    response = executor.execute_sync(OK)
    assert response.success, response.error
    lines = stdout_lines(response.stdout)
    assert len(lines) == 2 and lines[0].endswith("| INFO | still here") and lines[1] == "p"


def test_undecodable_and_control_characters(executor: RemoteExecutor) -> None:
    """Lone surrogates and control bytes come back as valid JSON; nothing is lost."""
    code = "import sys\ndef f():\n    sys.stdout.write('bad \\udcff byte \\x00 and \\x1b[31mred\\n')\n"
    response = executor.execute_sync(function_request(code, "f"))
    assert response.success
    assert stdout_lines(response.stdout) == ["bad \\udcff byte \x00 and \x1b[31mred"]
    assert json.loads(response.model_dump_json())["stdout"] == response.stdout
    _still_works(executor)


def test_hundred_megabyte_line(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """A 100 MB line is cut to the single-line bound with an exact marker."""
    response = executor.execute_sync(function_request("def f():\n    print('x' * 100_000_000)\n", "f"))
    [line] = stdout_lines(response.stdout)
    limit = FlashConfig().max_line_bytes
    assert line == "x" * limit + f" [... line cut: {100_000_000 - limit} bytes omitted]"
    _still_works(executor)


def test_deeply_nested_result_is_refused_clearly(executor: RemoteExecutor) -> None:
    """A result too deep to encode is a clear error, not a crash."""
    code = "def f():\n    v = []\n    for _ in range(100_000):\n        v = [v]\n    return v\n"
    response = executor.execute_sync(function_request(code, "f"))
    assert response.error is not None and "is not JSON-encodable" in response.error
    _still_works(executor)


def test_deep_and_huge_json_arguments(executor: RemoteExecutor) -> None:
    """Deeply nested and very large JSON arguments reach the function intact."""
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    code = """
    def f(deep, big):
        n = 0
        while deep:
            deep, n = deep[0], n + 1
        return [n, len(big)]
    """
    response = executor.execute_sync(function_request(code, "f", deep, list(range(1_000_000))))
    assert response.json_result == [5_000, 1_000_000]


class _RaisesOnLoad:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_explode, ("pickle bomb",))


def _explode(message: str) -> None:
    raise ValueError(message)


def test_pickle_that_raises_on_load(executor: RemoteExecutor) -> None:
    """An argument whose unpickling raises is named in the error."""
    request = {
        **function_request("def f(x):\n    return x\n", "f"),
        "serialization_format": "cloudpickle",
        "args": [pickled(_RaisesOnLoad())],
    }
    response = executor.execute_sync(request)
    assert response.error == "args[0]: cannot be unpickled: ValueError: pickle bomb"
    _still_works(executor)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def f():\n    return f()\n", "RecursionError: maximum recursion depth exceeded"),
        ("def f():\n    raise KeyboardInterrupt('stop')\n", "KeyboardInterrupt: stop"),
        ("def f():\n    raise SystemExit('bye')\n", "SystemExit: bye"),
    ],
)
def test_user_code_raising_the_unusual(executor: RemoteExecutor, code: str, expected: str) -> None:
    """Recursion errors, KeyboardInterrupt and SystemExit become clear errors."""
    response = executor.execute_sync(function_request(code, "f"))
    assert response.error is not None and response.error.startswith(expected)
    _still_works(executor)


def test_user_code_replacing_sys_stdout(executor: RemoteExecutor) -> None:
    """A replaced sys.stdout is put back, with a warning in that request's stdout."""
    code = "import io, sys\ndef f():\n    sys.stdout = io.StringIO()\n    print('swallowed')\n"
    response = executor.execute_sync(function_request(code, "f"))
    assert stdout_lines(response.stdout)[-1].endswith(
        "| WARN | user code replaced sys.stdout; otel_flash restored it"
    )
    _still_works(executor)


@pytest.mark.parametrize(
    "code",
    [
        "import logging\ndef f():\n    logging.basicConfig(force=True, level=logging.ERROR)\n",
        "import logging\ndef f():\n    logging.getLogger().handlers.clear()\n    logging.root.setLevel(50)\n",
        "import logging\ndef f():\n    logging.shutdown()\n",
    ],
    ids=["basicConfig-force", "handlers-cleared", "logging-shutdown"],
)
def test_user_code_reconfiguring_logging(executor: RemoteExecutor, code: str) -> None:
    """Whatever user code does to the root logger, the next request is captured whole."""
    assert executor.execute_sync(function_request(code, "f")).success
    _still_works(executor)
