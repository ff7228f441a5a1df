"""A request's ``modules``: validated first, importable for the load and the call, gone afterwards."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.config import Isolation
from otel_flash.exceptions import RequestError
from otel_flash.runtime.modules import validate_modules
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

# Imports its sibling module at call time (not only while the code is exec'd) and at load time.
USES_HELPERS = """
from helpers.maths import double

def use(x):
    import shout
    return shout.loud(str(double(x)))
"""
MODULES = {
    "helpers/__init__.py": "",
    "helpers/maths.py": "def double(x):\n    return 2 * x\n",
    "shout.py": "def loud(text):\n    return text + '!'\n",
}
# Waits for a file to exist, then answers which version of the module ``shared`` it imported.
GATED_SHARED = """
import os, time
import shared

def which(gate):
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return shared.VERSION
"""


@pytest.fixture(params=["thread", "process"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    """Every test here runs in both isolation modes."""
    mode: Isolation = request.param
    return mode


def _request(code: str, name: str, modules: dict[str, str], *args: Any) -> dict[str, Any]:
    return {**function_request(code, name, *args), "modules": modules}


def test_modules_are_importable_during_load_and_call(executor: RemoteExecutor) -> None:
    """A function importing sibling modules (a package too) at load and at call time runs."""
    response = executor.execute_sync(_request(USES_HELPERS, "use", MODULES, 21))
    assert response.success, response.error
    assert response.json_result == "42!"


def test_the_next_request_does_not_see_them(executor: RemoteExecutor) -> None:
    """After the execution its modules are off sys.path and out of sys.modules."""
    assert executor.execute_sync(_request(USES_HELPERS, "use", MODULES, 1)).success
    after = executor.execute_sync(function_request("def f():\n    import shout\n", "f"))
    assert after.success is False
    assert "No module named 'shout'" in (after.error or "")
    assert "shout" not in sys.modules and "helpers.maths" not in sys.modules


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../evil.py", "has an empty, '.' or '..' part"),
        ("/etc/evil.py", "is not a relative POSIX path"),
        ("pkg\\evil.py", "is not a relative POSIX path"),
        ("data.txt", "is not a .py file"),
        ("my-module.py", "has a part that is not a Python identifier"),
    ],
)
def test_a_bad_entry_is_named_before_anything_is_written(
    executor: RemoteExecutor, path: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad path fails the request with success false naming it; no directory of modules is made."""
    # a temporary directory of this test's own: other tests' children clean up the shared one meanwhile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    response = executor.execute_sync(_request("def f():\n    return 1\n", "f", {"ok.py": "", path: ""}))
    assert response.success is False
    assert response.error is not None and f"modules: entry {path!r} {problem}" in response.error
    assert _module_dirs() == []


def test_a_bad_map_fails_before_any_install(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """Validation comes first: a request with a bad map and dependencies installs nothing."""
    request = {**_request("def f():\n    return 1\n", "f", {"../x.py": ""}), "dependencies": ["six"]}
    response = executor.execute_sync(request)
    assert response.success is False and "modules: entry '../x.py'" in (response.error or "")
    [root] = telemetry.span_tree()
    assert root.children == []


def _module_dirs() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("flash-modules-*"))


def test_the_bounds_come_from_the_config() -> None:
    """Too many files, or too many bytes, is refused naming the bound."""
    with pytest.raises(RequestError, match="3 files is over the limit of 2"):
        validate_modules({"a.py": "", "b.py": "", "c.py": ""}, 2, 100)
    with pytest.raises(RequestError, match=r"entry 'b\.py' takes the sources over the limit of 10 bytes"):
        validate_modules({"a.py": "x" * 6, "b.py": "y" * 6}, 5, 10)
    assert FlashConfig.from_env({"FLASH_MAX_MODULES": "7", "FLASH_MAX_MODULES_BYTES": "99"}).max_modules == 7


def test_a_module_cannot_replace_one_the_worker_imported(executor: RemoteExecutor) -> None:
    """A module named like one already imported (json) is refused, never silently shadowed."""
    response = executor.execute_sync(_request("def f():\n    return 1\n", "f", {"json.py": "x = 1"}))
    assert response.success is False
    assert "'json' names a module the worker has already imported" in (response.error or "")


def test_setup_time_is_a_phase_span(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """flash.modules.setup precedes the load, counts the files, and is in the REPORT line."""
    response = executor.execute_sync(_request(USES_HELPERS, "use", MODULES, 1))
    [root] = telemetry.span_tree()
    names = [child.span.name for child in root.children]
    assert names[:2] == ["flash.modules.setup", "flash.function.load"]
    assert (telemetry.span("flash.modules.setup").attributes or {})["flash.modules.count"] == 3
    assert " modules.setup=" in (response.stdout or "").splitlines()[-1]


def test_concurrent_requests_never_run_each_others_version(
    executor: RemoteExecutor, isolation: Isolation, tmp_path: Path
) -> None:
    """Different `shared` sources at once: a clear error in thread mode, each its own in process mode."""
    gate = tmp_path / "gate"
    answers: dict[str, Any] = {}

    def run(version: str) -> None:
        modules = {"shared.py": f"VERSION = {version!r}\n"}
        answers[version] = executor.execute_sync(_request(GATED_SHARED, "which", modules, str(gate)))

    first = threading.Thread(target=run, args=("first",))
    second = threading.Thread(target=run, args=("second",))
    first.start()
    try:
        _wait_for_import(isolation)
        second.start()
        if isolation == "thread":  # refused at once, while the first holds `shared`
            second.join(60)
    finally:
        gate.touch()
        first.join(60)
        second.join(60)
    assert answers["first"].json_result == "first"
    if isolation == "thread":
        assert answers["second"].success is False
        assert "'shared' is in use by a concurrent execution with other sources" in (
            answers["second"].error or ""
        )
    else:
        assert answers["second"].json_result == "second"


def _wait_for_import(isolation: Isolation) -> None:
    """Until the first execution holds `shared` (thread mode) or has forked its child (process mode)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if isolation == "thread" and "shared" in sys.modules:
            return
        if isolation == "process" and any(path.joinpath("shared.py").exists() for path in _module_dirs()):
            return
        time.sleep(0.01)
    pytest.fail(f"the first execution never loaded shared (pid {os.getpid()})")
