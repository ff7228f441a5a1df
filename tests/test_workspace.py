"""The execution's workspace: temporary and lazy by default, persistent when configured."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from otel_flash import FlashConfig, RemoteExecutor, current_workspace
from otel_flash.runtime.workspace import Workspace
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

WRITER = """
import os
from otel_flash import current_workspace

def write(name, text):
    path = current_workspace() / name
    path.write_text(text)
    return {"dir": str(current_workspace()), "files": sorted(os.listdir(current_workspace()))}
"""
FROM_THREAD = """
import threading
from otel_flash import current_workspace

def from_thread():
    seen = []
    worker = threading.Thread(target=lambda: seen.append(str(current_workspace())))
    worker.start()
    worker.join()
    return [str(current_workspace()), *seen]
"""
BARRIER: threading.Barrier | None = None  # set by a test, awaited by the code it submits


def _executor(telemetry: TelemetryCapture, **settings: Any) -> RemoteExecutor:
    return RemoteExecutor(
        FlashConfig(**settings),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    )


def test_temporary_workspace_exists_during_and_is_removed_after(executor: RemoteExecutor) -> None:
    """By default the function gets a fresh directory, removed when the execution ends."""
    response = executor.execute_sync(function_request(WRITER, "write", "a.txt", "hello"))
    assert response.success, response.error
    result = response.json_result
    assert result["files"] == ["a.txt"]
    assert Path(result["dir"]).name.startswith("flash-workspace-")
    assert not Path(result["dir"]).exists()


def test_trivial_request_gets_no_workspace_phase(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """Without dependencies or a configured workspace there is no setup span (the directory is lazy)."""
    executor.execute_sync(function_request("def f():\n    return 1\n", "f"))
    assert "flash.workspace.setup" not in [span.name for span in telemetry.spans()]


def test_temporary_workspace_is_made_on_first_use_only() -> None:
    """A temporary workspace touches the file system only when asked for, and is gone after close."""
    workspace = Workspace()
    assert not workspace.created
    path = workspace.path()
    assert workspace.created and path.is_dir()
    assert workspace.path() == path
    workspace.close()
    assert not path.exists()
    with pytest.raises(LookupError, match="has ended"):
        workspace.path()


def test_persistent_workspace_is_kept_and_shared(telemetry: TelemetryCapture, tmp_path: Path) -> None:
    """A configured workspace is created if missing, recorded on its span, and kept across executions."""
    root = tmp_path / "volume" / "workspace"
    with _executor(telemetry, workspace_path=str(root)) as executor:
        first = executor.execute_sync(function_request(WRITER, "write", "one.txt", "1"))
        second = executor.execute_sync(function_request(WRITER, "write", "two.txt", "2"))
    assert first.success and second.success, (first.error, second.error)
    assert second.json_result == {"dir": str(root), "files": ["one.txt", "two.txt"]}
    assert sorted(p.name for p in root.iterdir()) == ["one.txt", "two.txt"]
    setups = [span for span in telemetry.spans() if span.name == "flash.workspace.setup"]
    assert [dict(span.attributes or {}) for span in setups] == [{"flash.workspace.path": str(root)}] * 2
    roots = [node for node in telemetry.span_tree() if node.name == "flash.execute"]
    assert roots[0].shape()[1][0] == ("flash.workspace.setup", ())


def test_concurrent_executions_get_their_own_workspaces(
    executor: RemoteExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two executions running at once each see their own directory and only their own file."""
    monkeypatch.setattr(sys.modules[__name__], "BARRIER", threading.Barrier(2))
    code = WRITER.replace("    path = ", f"    import {__name__} as t; t.BARRIER.wait()\n    path = ")
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        results[name] = executor.execute_sync(function_request(code, "write", name, name))

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a, b = results["a"].json_result, results["b"].json_result
    assert (a["files"], b["files"]) == (["a"], ["b"]), (results["a"].error, results["b"].error)
    assert a["dir"] != b["dir"]


def test_threads_started_by_the_function_see_its_workspace(executor: RemoteExecutor) -> None:
    """The workspace travels with the execution's context into threads the function starts."""
    response = executor.execute_sync(function_request(FROM_THREAD, "from_thread"))
    assert response.success, response.error
    inside, in_thread = response.json_result
    assert inside == in_thread


def test_outside_an_execution_there_is_no_workspace() -> None:
    """current_workspace() refuses to answer outside an execution."""
    with pytest.raises(LookupError, match="only available while an execution runs"):
        current_workspace()
