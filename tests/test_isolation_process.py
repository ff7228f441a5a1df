"""``isolation="process"``: a crash ends one request; fd output is captured; telemetry joins the trace."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from otel_flash import FlashConfig, FunctionResponse, RemoteExecutor
from otel_flash.isolation import CLASS_REFUSAL
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

ExecutorFactory = Callable[..., RemoteExecutor]
CLEAN = """
import logging
def clean(tag):
    logging.getLogger("user").info("%s logged", tag)
    print(f"{tag} printed")
    return tag
"""


@pytest.fixture
def make_executor(telemetry: TelemetryCapture) -> Iterator[ExecutorFactory]:
    """Process-mode executors on the in-memory providers, shut down after the test."""
    made: list[RemoteExecutor] = []

    def make(**settings: Any) -> RemoteExecutor:
        executor = RemoteExecutor(
            FlashConfig(isolation="process", **settings),
            tracer_provider=telemetry.tracer_provider,
            logger_provider=telemetry.logger_provider,
        )
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown()


def _assert_clean_next(executor: RemoteExecutor, tag: str = "next") -> None:
    response = executor.execute_sync(function_request(CLEAN, "clean", tag))
    assert response.success, response.error
    lines = stdout_lines(response.stdout)
    assert len(lines) == 2 and lines[0].endswith(f"| INFO | {tag} logged") and lines[1] == f"{tag} printed"


CRASHES = {
    "segfault": (
        "import ctypes\ndef f():\n    print('before the crash')\n    ctypes.string_at(0)\n",
        "the function's process was killed by signal SIGSEGV",
    ),
    "os-exit": (
        "import os\ndef f():\n    print('before the crash')\n    os._exit(3)\n",
        "the function's process exited with code 3 before answering",
    ),
    "sigkill-self": (
        "import os, signal\ndef f():\n    print('before the crash')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n",
        "the function's process was killed by signal SIGKILL",
    ),
}


@pytest.mark.parametrize("case", list(CRASHES))
def test_a_crash_ends_only_its_request(make_executor: ExecutorFactory, case: str) -> None:
    """A segfault, os._exit or a fatal signal fails that request with its cause and earlier lines kept."""
    code, cause = CRASHES[case]
    executor = make_executor()
    response = executor.execute_sync(function_request(code, "f"))
    assert not response.success
    assert response.error == cause
    lines = stdout_lines(response.stdout)
    assert lines[0] == "before the crash"
    assert lines[-1].endswith(f"| ERROR | execution failed: IsolationError: {cause}")
    _assert_clean_next(executor)


def test_hard_timeout_kills_the_process_group(make_executor: ExecutorFactory) -> None:
    """Past timeout_s the child and the programs it started are killed; lines before are kept."""
    code = """
    import subprocess, time
    def f():
        sleeper = subprocess.Popen(["sleep", "300"])
        print(f"sleeper {sleeper.pid}", flush=True)
        time.sleep(300)
    """
    executor = make_executor()
    # a few seconds of room: under load the child may take a second to start its sleeper
    response = executor.execute_sync({**function_request(code, "f"), "timeout_s": 4})
    assert not response.success
    assert response.error == "timed out after 4 s; the function's process was killed"
    [line] = [line for line in stdout_lines(response.stdout) if line.startswith("sleeper ")]
    _assert_gone(int(line.split()[1]))
    _assert_clean_next(executor)


def _assert_gone(pid: int) -> None:
    """The process ends (a zombie awaiting its reaper counts as ended)."""
    for _ in range(200):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} is still running")


def test_runaway_allocation_hits_the_memory_limit(make_executor: ExecutorFactory) -> None:
    """With memory_limit_mb, an allocation loop fails that request with a memory-limit error."""
    code = """
    def f():
        print("allocating")
        hog = []
        while True:
            hog.append(bytearray(32 << 20))
    """
    executor = make_executor(memory_limit_mb=768)
    response = executor.execute_sync(function_request(code, "f"))
    assert not response.success
    assert (response.error or "").startswith("memory limit of 768 MB exceeded\n\nMemoryError")
    assert stdout_lines(response.stdout)[0] == "allocating"
    _assert_clean_next(executor)


def test_descriptor_level_output_is_captured(
    make_executor: ExecutorFactory, telemetry: TelemetryCapture
) -> None:
    """os.write to fds 1 and 2 and a program's output become stdout lines and exported records."""
    code = """
    import os, subprocess
    def f():
        os.write(1, b"fd one\\n")
        os.write(2, b"fd two\\n")
        subprocess.run(["echo", "from echo"], check=True)
        os.write(1, b"no newline")
    """
    executor = make_executor()
    response = executor.execute_sync(function_request(code, "f"))
    assert response.success, response.error
    assert sorted(stdout_lines(response.stdout)) == ["fd one", "fd two", "from echo", "no newline"]
    streams = {
        str(r.log_record.body): (r.log_record.attributes or {}).get("log.iostream")
        for r in telemetry.log_records()
    }
    assert (
        streams["fd one"] == "stdout" and streams["fd two"] == "stderr" and streams["from echo"] == "stdout"
    )


SPANS = """
import logging
from opentelemetry import trace

def f():
    logging.getLogger("user").info("outside")
    with trace.get_tracer("user.code").start_as_current_span("user.work") as span:
        span.set_attribute("work.items", 3)
        logging.getLogger("user").info("inside")
        print("printed inside")
    return 1
"""


def test_child_spans_and_records_join_the_trace(
    make_executor: ExecutorFactory, telemetry: TelemetryCapture
) -> None:
    """The function's own span is a child of flash.function.call; records carry the right span ids."""
    executor = make_executor()
    response = executor.execute_sync(function_request(SPANS, "f"))
    assert response.success, response.error
    [tree] = telemetry.span_tree()
    assert tree.shape() == (
        "flash.execute",
        (
            ("flash.function.load", ()),
            ("flash.function.call", (("user.work", ()),)),
            ("flash.result.serialize", ()),
        ),
    )
    call, work = telemetry.span("flash.function.call"), telemetry.span("user.work")
    assert work.context.trace_id == call.context.trace_id and work.parent is not None
    assert work.parent.span_id == call.context.span_id
    assert (work.attributes or {})["work.items"] == 3
    assert work.resource is telemetry.tracer_provider.resource
    ids = {str(r.log_record.body): r.log_record.span_id for r in telemetry.log_records()}
    assert ids["outside"] == call.context.span_id
    assert ids["inside"] == ids["printed inside"] == work.context.span_id
    assert [line.split(" | ")[-1] for line in stdout_lines(response.stdout)] == [
        "outside",
        "inside",
        "printed inside",
    ]


def test_user_errors_read_as_in_process(make_executor: ExecutorFactory, telemetry: TelemetryCapture) -> None:
    """An exception in the child gives the same error text and span status as in-process."""
    code = "def f():\n    raise ValueError('boom')\n"
    response = make_executor().execute_sync(function_request(code, "f"))
    assert (response.error or "").startswith("ValueError: boom\n\nTraceback (most recent call last):\n")
    assert "line 2, in f\n    raise ValueError('boom')\nValueError: boom" in (response.error or "")
    call = telemetry.span("flash.function.call")
    assert call.status.description == "ValueError: boom"
    [event] = call.events
    assert (event.attributes or {})["exception.type"] == "ValueError"


def test_lines_stream_live_across_the_process_boundary(
    make_executor: ExecutorFactory, tmp_path: Path
) -> None:
    """on_line sees a child's line while the child still runs (the child waits until the worker saw it)."""
    flag = tmp_path / "seen"
    code = """
    import os, time
    def f(flag):
        print("first", flush=True)
        for _ in range(600):
            if os.path.exists(flag):
                return "seen live"
            time.sleep(0.05)
        return "never seen"
    """

    def on_line(line: str) -> None:
        if line == "first":
            flag.touch()

    response = make_executor().execute_sync(function_request(code, "f", str(flag)), on_line=on_line)
    assert response.json_result == "seen live"


def test_next_request_sees_nothing_of_the_previous(make_executor: ExecutorFactory) -> None:
    """Module state a function changes is gone for the next request: each runs in a fresh process."""
    code = """
    import json
    def f():
        seen = getattr(json, "flash_mark", None)
        json.flash_mark = "set"
        return seen
    """
    executor = make_executor()
    first = executor.execute_sync(function_request(code, "f"))
    second = executor.execute_sync(function_request(code, "f"))
    assert (first.success, first.json_result, second.json_result) == (True, None, None)


def test_async_function_and_pickled_result(make_executor: ExecutorFactory) -> None:
    """A coroutine function runs to completion in the child; cloudpickle results come back as in-process."""
    from tests.requests import pickled, unpickled

    code = "import asyncio\nasync def f(x):\n    await asyncio.sleep(0)\n    return {'double': x * 2}\n"
    request = {**function_request(code, "f"), "args": [pickled(21)], "serialization_format": "cloudpickle"}
    response = make_executor().execute_sync(request)
    assert response.success, response.error
    assert unpickled(response.result or "") == {"double": 42}


def test_class_requests_are_refused(make_executor: ExecutorFactory) -> None:
    """Class instances are not supported in process mode: a clear error, the worker intact."""
    executor = make_executor()
    response = executor.execute_sync(
        {"execution_type": "class", "class_name": "C", "class_code": "class C:\n    pass\n"}
    )
    assert (response.success, response.error) == (False, CLASS_REFUSAL)
    _assert_clean_next(executor)


@pytest.mark.asyncio
async def test_async_entry_point_and_a_crash_among_others(make_executor: ExecutorFactory) -> None:
    """Under execute(), one crashing request among eight leaves the other seven whole."""
    import asyncio

    executor = make_executor()
    crash = function_request(CRASHES["segfault"][0], "f")
    requests = [crash if i == 3 else function_request(CLEAN, "clean", f"req{i}") for i in range(8)]
    responses: list[FunctionResponse] = list(await asyncio.gather(*(executor.execute(r) for r in requests)))
    assert [r.success for r in responses] == [i != 3 for i in range(8)]
    for i, response in enumerate(responses):
        if i != 3:
            assert stdout_lines(response.stdout)[1] == f"req{i} printed"


def test_shutdown_stops_the_zygote(telemetry: TelemetryCapture) -> None:
    """After shutdown no process of the executor is left."""
    executor = RemoteExecutor(
        FlashConfig(isolation="process"),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    )
    assert executor.execute_sync(function_request(CLEAN, "clean", "x")).success
    before = {child.pid for child in psutil.Process(os.getpid()).children()}
    executor.shutdown()
    after = {child.pid for child in psutil.Process(os.getpid()).children() if child.status() != "zombie"}
    assert before and not (before & after)
