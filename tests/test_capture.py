"""Log capture end to end: exact lines, order, span correlation, bounds, REPORT, live lines.

Every case runs with ``isolation="thread"`` and ``isolation="process"``: the rendered
stdout and the exported records must not depend on where the function ran.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator

import pytest

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.capture import CaptureProcessor
from otel_flash.config import Isolation
from otel_flash.render import format_timestamp
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines

MIXED = """
import logging, sys
log = logging.getLogger("user.job")

def f():
    log.info("one")
    print("two")
    log.warning("three %d", 3)
    sys.stderr.write("err line\\n")
    print("four", end="")
    print(" five")
    log.debug("hidden at INFO")
    print("tail without newline", end="")
    return 0
"""


ExecutorFactory = Callable[..., RemoteExecutor]


@pytest.fixture(params=["thread", "process"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    """Both isolation modes must render and export the same lines."""
    mode: Isolation = request.param
    return mode


@pytest.fixture
def make_executor(telemetry: TelemetryCapture, isolation: Isolation) -> ExecutorFactory:
    """Builds executors with settings changed, in the isolation mode of the test."""

    def make(**settings: object) -> RemoteExecutor:
        return RemoteExecutor(
            FlashConfig(isolation=isolation).replace(**settings),
            tracer_provider=telemetry.tracer_provider,
            logger_provider=telemetry.logger_provider,
        )

    return make


def _stamp(telemetry: TelemetryCapture, body: str) -> str:
    [record] = [r for r in telemetry.log_records() if r.log_record.body == body]
    assert record.log_record.timestamp is not None
    return format_timestamp(record.log_record.timestamp)


def test_logs_and_prints_interleave_in_true_order(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """Log lines and print/stderr lines appear exactly, in emission order; the partial tail is kept."""
    response = executor.execute_sync(function_request(MIXED, "f"))
    assert stdout_lines(response.stdout) == [
        f"{_stamp(telemetry, 'one')} | INFO | one",
        "two",
        f"{_stamp(telemetry, 'three 3')} | WARN | three 3",
        "err line",
        "four five",
        "tail without newline",
    ]


def test_debug_level_uses_the_debug_format(
    telemetry: TelemetryCapture, make_executor: ExecutorFactory
) -> None:
    """At DEBUG, debug lines are captured and show logger name and file:line."""
    with make_executor(log_level="DEBUG") as executor:
        response = executor.execute_sync(function_request(MIXED, "f"))
    lines = stdout_lines(response.stdout)
    stamp = _stamp(telemetry, "hidden at INFO")
    assert re.fullmatch(
        rf"{re.escape(stamp)} \| DEBUG \| user\.job \| <flash:f:[0-9a-f]{{8}}>:12 \| hidden at INFO",
        lines[-2],
    )


def test_print_lines_are_otel_records_with_iostream(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """Captured output is exported too, marked log.iostream stdout/stderr."""
    executor.execute_sync(function_request(MIXED, "f"))
    streams = {
        str(r.log_record.body): (r.log_record.attributes or {}).get("log.iostream")
        for r in telemetry.log_records()
    }
    assert streams["two"] == "stdout"
    assert streams["err line"] == "stderr"
    assert streams["one"] is None


def test_records_carry_the_phase_span_ids(executor: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """Records emitted while the user's code runs belong to flash.function.call."""
    executor.execute_sync(function_request(MIXED, "f"))
    call = telemetry.span("flash.function.call").context
    user_records = [r for r in telemetry.log_records() if r.log_record.body in ("one", "two", "err line")]
    assert len(user_records) == 3
    for record in user_records:
        assert (record.log_record.trace_id, record.log_record.span_id) == (call.trace_id, call.span_id)


def test_report_line_summarises_the_execution(executor: RemoteExecutor) -> None:
    """The last line reports trace id, durations per phase and line counts; the first, its cold start."""
    for cold in (" coldstart=true", ""):
        response = executor.execute_sync(function_request(MIXED, "f"))
        report = (response.stdout or "").splitlines()[-1]
        pattern = (
            rf"REPORT trace_id={response.trace_id} duration=\d+\.\d\dms function\.load=\d+\.\d\dms "
            r"function\.call=\d+\.\d\dms result\.serialize=\d+\.\d\dms"
            rf" lines=6 omitted_lines=0 omitted_bytes=0{cold}"
        )
        assert re.fullmatch(pattern, report), report


LOOP = """
import logging
def f(n):
    for i in range(n):
        logging.getLogger("flood").info("line %d", i)
"""


def test_line_bound_keeps_head_marker_and_tail(
    telemetry: TelemetryCapture, make_executor: ExecutorFactory
) -> None:
    """Over max_log_lines: the first and last lines survive around one exact marker."""
    with make_executor(max_log_lines=6) as executor:
        response = executor.execute_sync(function_request(LOOP, "f", 100))
    messages = [line.split(" | ")[-1] for line in stdout_lines(response.stdout)]
    dropped = sum(len(line) + 1 for line in response_lines_all(telemetry)[3:97])
    assert messages == [
        "line 0",
        "line 1",
        "line 2",
        f"[... 94 lines ({dropped} bytes) omitted ...]",
        "line 97",
        "line 98",
        "line 99",
    ]
    attributes = telemetry.span("flash.execute").attributes or {}
    assert (attributes["flash.log.lines"], attributes["flash.log.omitted_lines"]) == (100, 94)
    assert attributes["flash.log.omitted_bytes"] == dropped
    assert len(telemetry.log_records()) == 100  # the exporter still sees every record


def response_lines_all(telemetry: TelemetryCapture) -> list[str]:
    """Every captured record rendered as the production format would."""
    return [
        f"{format_timestamp(r.log_record.timestamp or 0)} | INFO | {r.log_record.body!s}"
        for r in telemetry.log_records()
    ]


def test_byte_bound_applies(make_executor: ExecutorFactory) -> None:
    """max_log_bytes bounds the kept text even when the line bound is far."""
    with make_executor(max_log_bytes=2000) as executor:
        response = executor.execute_sync(function_request(LOOP, "f", 500))
    kept = stdout_lines(response.stdout)
    [marker] = [line for line in kept if line.startswith("[...")]
    assert sum(len(line) + 1 for line in kept if line is not marker) <= 2000
    assert kept[0].endswith("| line 0") and kept[-1].endswith("| line 499")
    assert re.fullmatch(r"\[\.\.\. \d+ lines \(\d+ bytes\) omitted \.\.\.\]", marker)


def test_single_huge_line_is_cut(telemetry: TelemetryCapture, make_executor: ExecutorFactory) -> None:
    """A line over max_line_bytes is cut with a marker saying how much."""
    code = "def f():\n    print('x' * 5000)\n"
    with make_executor(max_line_bytes=100) as executor:
        response = executor.execute_sync(function_request(code, "f"))
    assert stdout_lines(response.stdout) == ["x" * 100 + " [... line cut: 4900 bytes omitted]"]
    assert (telemetry.span("flash.execute").attributes or {})["flash.log.omitted_bytes"] == 4900


def test_live_subscriber_sees_lines_as_emitted(executor: RemoteExecutor, isolation: Isolation) -> None:
    """on_line receives every captured line, in order, while the function runs."""
    if isolation == "process":
        pytest.skip(
            "shares a module with the function; test_isolation_process pins live lines across processes"
        )
    seen: list[str] = []
    code = """
    import logging
    def f(seen_count):
        print("first")
        import tests.test_capture as t
        t.SEEN_DURING_CALL = list(t.LIVE)
        logging.getLogger("u").info("second")
    """
    import tests.test_capture as this

    this.LIVE = seen  # type: ignore[attr-defined]  # shared with the user code
    response = executor.execute_sync(function_request(code, "f", 0), on_line=seen.append)
    assert this.SEEN_DURING_CALL == ["first"]  # type: ignore[attr-defined]
    assert seen == stdout_lines(response.stdout)


def test_failing_subscriber_breaks_nothing(
    executor: RemoteExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    """A subscriber that raises is reported internally; the function and its stdout are intact."""

    def explode(line: str) -> None:
        raise RuntimeError("subscriber bug")

    response = executor.execute_sync(
        function_request("def f():\n    print('a')\n    return 1\n", "f"), on_line=explode
    )
    assert response.success and stdout_lines(response.stdout) == ["a"]


@pytest.fixture
def broken_renderer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make every CaptureProcessor's renderer raise."""

    def boom(self: CaptureProcessor, record: object) -> str:
        raise ValueError("renderer bug")

    monkeypatch.setattr(CaptureProcessor, "__init__", _init_with(boom))
    yield


def _init_with(render: object) -> object:
    original = CaptureProcessor.__init__

    def init(self: CaptureProcessor, _render: object) -> None:
        original(self, lambda record: render(self, record))  # type: ignore[operator]

    return init


def test_renderer_failure_never_reaches_user_code(
    broken_renderer: None, telemetry: TelemetryCapture, make_executor: ExecutorFactory
) -> None:
    """A failing renderer loses lines, not the execution: the function succeeds and exporters see all."""
    with make_executor() as executor:
        response = executor.execute_sync(function_request(MIXED, "f"))
    assert response.success
    assert stdout_lines(response.stdout) == []
    assert "one" in telemetry.log_bodies()


def test_writes_outside_executions_pass_through(
    executor: RemoteExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    """print outside any execution reaches the original stream untouched."""
    print("worker says hi")
    sys.stderr.write("worker warns\n")
    out, err = capsys.readouterr()
    assert "worker says hi" in out and "worker warns" in err


def test_removed_handler_is_put_back(executor: RemoteExecutor) -> None:
    """If user code removed our handler, the next execution reinstalls it."""
    code = "import logging\ndef f():\n    logging.getLogger().handlers.clear()\n"
    executor.execute_sync(function_request(code, "f"))
    response = executor.execute_sync(
        function_request("import logging\ndef g():\n    logging.getLogger('x').info('back')\n", "g")
    )
    assert stdout_lines(response.stdout)[0].endswith("| INFO | back")


def test_background_records_are_exported_but_never_captured(
    executor: RemoteExecutor, telemetry: TelemetryCapture
) -> None:
    """A record from outside any execution reaches exporters but no response."""
    logging.getLogger("flash.worker").warning("background")
    response = executor.execute_sync(function_request("def f():\n    return 1\n", "f"))
    assert "background" in telemetry.log_bodies()
    assert "background" not in (response.stdout or "")


def test_unbounded_partial_write_is_cut_once(make_executor: ExecutorFactory) -> None:
    """Many writes without a newline keep only the bound in memory and count every dropped byte."""
    code = (
        "import sys\ndef f():\n    for _ in range(1000):\n        sys.stdout.write('y' * 1000)\n    print()\n"
    )
    with make_executor(max_line_bytes=100) as executor:
        response = executor.execute_sync(function_request(code, "f"))
    assert stdout_lines(response.stdout) == ["y" * 100 + " [... line cut: 999900 bytes omitted]"]
