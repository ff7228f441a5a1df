"""The installed ``otel-flash`` console script, run in a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.requests import HELLO, function_request, stdout_lines
from tests.stack import OTEL_FLASH, ServedWorker, clean_env

EXAMPLES = Path(__file__).parent.parent / "examples"
GATED = """
import logging, os, time

def gated(gate):
    logging.getLogger("gated").info("before the gate")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.01)
    logging.getLogger("gated").info("after the gate")
    return "opened"
"""


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``otel-flash ARGS`` to completion."""
    return subprocess.run(
        [OTEL_FLASH, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        env=clean_env(),
        check=False,
    )


def _write(tmp_path: Path, request: dict[str, Any]) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    return str(path)


def test_help_explains_commands_and_exit_codes() -> None:
    """`--help` of the tool and of each command names the commands, options and exit codes."""
    top, run, serve = run_cli("--help"), run_cli("run", "--help"), run_cli("serve", "--help")
    assert (top.returncode, run.returncode, serve.returncode) == (0, 0, 0)
    assert "run" in top.stdout and "serve" in top.stdout and "exit codes:" in top.stdout
    assert all(
        option in run.stdout for option in ("REQUEST", "--pretty", "--stream", "1  the execution failed")
    )
    assert all(option in serve.stdout for option in ("--host", "--port", "/execute/stream", "/ping"))
    assert all(option in serve.stdout for option in ("--api-key", "--allow-unauthenticated", "--docs"))


def test_run_prints_the_response_and_exits_0(tmp_path: Path) -> None:
    """A successful execution prints the FunctionResponse JSON and exits 0."""
    done = run_cli("run", _write(tmp_path, function_request(HELLO, "hello", "cli")))
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["json_result"] == "Hello, cli!"
    assert stdout_lines(response["stdout"])[1] == "Hello, cli!"


def test_run_reads_a_runpod_envelope_from_stdin() -> None:
    """`run -` reads the request from standard input, RunPod envelope included."""
    request = {"input": function_request(HELLO, "hello", "stdin")}
    done = run_cli("run", "-", stdin=json.dumps(request))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["json_result"] == "Hello, stdin!"


def test_failed_execution_exits_1_with_the_response() -> None:
    """A user error still prints the response (success false) and exits 1."""
    done = run_cli("run", str(EXAMPLES / "failing.json"))
    assert done.returncode == 1
    response = json.loads(done.stdout)
    assert response["success"] is False
    assert "ZeroDivisionError" in response["error"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read request"),
        ("{not json", "cannot read request"),
        ('{"function_code": "x = 1"}', "'function_name' is required"),
        ('{"function_name": "f", "args": [' + "7" * 6000 + "]}", "Exceeds the limit (4300 digits)"),
        ('{"function_name": "f", "args": ' + "[" * 5000 + "]" * 5000 + "}", "JSON nested too deeply"),
    ],
    ids=["missing-file", "malformed-json", "invalid-request", "6000-digit-integer", "nested-5000-deep"],
)
def test_unusable_input_exits_2_with_a_message(tmp_path: Path, content: str | None, message: str) -> None:
    """A missing file, malformed JSON or an invalid request exits 2 and says why on stderr."""
    path = tmp_path / "request.json"
    if content is not None:
        path.write_text(content)
    done = run_cli("run", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


@pytest.mark.parametrize("pretty", [False, True])
def test_run_prints_valid_output_for_lone_surrogates(tmp_path: Path, pretty: bool) -> None:
    """An undecodable file name in the result and the lines: valid JSON (or text), no traceback."""
    from tests.test_server import SHOWN, SURROGATE

    done = run_cli(
        "run", *(["--pretty"] if pretty else []), _write(tmp_path, function_request(SURROGATE, "odd"))
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    if pretty:
        assert "report-" in done.stdout
    else:
        response = json.loads(done.stdout)
        assert response["json_result"] == SHOWN
        assert len(response["trace_id"]) == 32


def test_pretty_shows_stdout_result_and_span_tree(tmp_path: Path) -> None:
    """`--pretty` prints the captured lines, the decoded result and the span tree."""
    done = run_cli("run", "--pretty", _write(tmp_path, function_request(HELLO, "hello", "p")))
    assert done.returncode == 0, done.stderr
    assert "── stdout" in done.stdout and "Hello, p!" in done.stdout
    assert "── result " in done.stdout and '\n"Hello, p!"\n' in done.stdout
    assert "── spans" in done.stdout and "flash.execute" in done.stdout


def test_stream_prints_lines_live_on_stderr(tmp_path: Path) -> None:
    """`--stream` writes the first line while the function is still blocked; stdout keeps the JSON."""
    gate = tmp_path / "gate"
    request = _write(tmp_path, function_request(GATED, "gated", str(gate)))
    process = subprocess.Popen(
        [OTEL_FLASH, "run", "--stream", request],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    gate.touch()
    out, err = process.communicate(timeout=90)
    assert first.rstrip().endswith(" | INFO | before the gate")
    assert err.rstrip().endswith(" | INFO | after the gate")
    assert process.returncode == 0
    assert json.loads(out)["json_result"] == "opened"


def test_serve_runs_the_worker_and_stops_cleanly_on_sigterm() -> None:
    """`serve --host --port` answers /ping and /execute; SIGTERM exits 0 after flushing.

    Its console shows the worker's own lines, not the lines of executions.
    """
    with ServedWorker({}) as served:
        answer = httpx.post(f"{served.url}/execute", json=function_request(HELLO, "hello", "srv"), timeout=60)
    out, err, process = served.out, served.err, served.process
    assert answer.json()["json_result"] == "Hello, srv!"
    assert process is not None and process.returncode == 0, err
    assert "| INFO | flash.server | otel-flash worker 0.1.0 ready" in err
    assert "| INFO | flash.server | otel-flash worker stopping: flushing telemetry" in err
    assert "greeting srv" not in out + err


def test_run_exports_spans_and_logs_where_otel_variables_say(tmp_path: Path) -> None:
    """With an OTLP endpoint set, `otel-flash run` exports its trace and log records there."""
    from tests.otlp_receivers import GrpcReceiver

    request = _write(tmp_path, {**HELLO_LIKE})
    with GrpcReceiver() as receiver:
        env = {
            **clean_env(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        }
        result = subprocess.run(
            [OTEL_FLASH, "run", request], capture_output=True, text=True, timeout=90, env=env, check=False
        )
        assert result.returncode == 0, result.stderr
        trace_id = json.loads(result.stdout)["trace_id"]
        assert receiver.received.wait_for(lambda got: "flash.function.call" in got.span_names())
        assert {span.trace_id for span in receiver.received.spans()} == {trace_id}
        assert "exported hello" in [log.body for log in receiver.received.logs()]


HELLO_LIKE = {
    "function_name": "f",
    "function_code": "import logging\ndef f():\n    logging.getLogger('x').info('exported hello')\n",
    "serialization_format": "json",
}


USER_SPAN = """
from opentelemetry import trace

def traced():
    with trace.get_tracer("user.code").start_as_current_span("user.work"):
        return "done"
"""


def test_serve_exports_user_spans_under_the_call(tmp_path: Path) -> None:
    """Through `serve`, spans user code starts with the global OTel API nest under flash.function.call,
    and a traceparent header continues the caller's trace."""
    from tests.otlp_receivers import GrpcReceiver

    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with GrpcReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with ServedWorker(env) as served:
            headers = {"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}
            answer = httpx.post(
                f"{served.url}/execute",
                json=function_request(USER_SPAN, "traced"),
                headers=headers,
                timeout=60,
            )
            assert answer.json()["json_result"] == "done"
            assert receiver.received.wait_for(lambda got: "user.work" in got.span_names())
        spans = {span.name: span for span in receiver.received.spans() if span.trace_id == caller_trace}
    assert spans["user.work"].parent_span_id == spans["flash.function.call"].span_id
    assert spans["flash.function.call"].parent_span_id == spans["flash.execute"].span_id
    # flash.execute is the one SERVER span: the caller's span is its parent, no framework span between
    assert spans["flash.execute"].parent_span_id == "00f067aa0ba902b7"
