"""The ``otel-flash`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_flash.config import FlashConfig
from otel_flash.executor import RemoteExecutor
from otel_flash.protocol import FunctionResponse
from otel_flash.serialization import decode_value
from otel_flash.telemetry import build_resource
from otel_flash.tree import build_span_tree, format_span_tree


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``otel-flash``."""
    parser = argparse.ArgumentParser(
        prog="otel-flash",
        description="Run remote function calls with every moment observable through OpenTelemetry.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="execute one FunctionRequest from a JSON file (or - for stdin) and print the response",
        description='Execute one FunctionRequest (plain, or RunPod\'s {"input": ...} envelope). '
        "Prints the FunctionResponse as JSON; exits 0 on success, 1 on a failed execution, "
        "2 on unreadable input.",
    )
    run.add_argument("request", help="path of a JSON request file, or - to read standard input")
    run.add_argument(
        "--pretty",
        action="store_true",
        help="print the captured stdout, the decoded result and the span tree instead of JSON",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otel-flash`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _run(args.request, pretty=args.pretty, out=sys.stdout)
    return 2  # pragma: no cover  # argparse rejects unknown commands first


def _read_request(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()  # noqa: SIM115
    return json.loads(text)


def _run(source: str, *, pretty: bool, out: TextIO) -> int:
    try:
        payload = _read_request(source)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"otel-flash: cannot read request {source!r}: {exc}", file=sys.stderr)
        return 2
    config = FlashConfig.from_env()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=build_resource(config), shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    with RemoteExecutor(config, tracer_provider=tracer_provider) as executor:
        response = executor.execute_sync(payload)
    if pretty:
        out.write(format_pretty(response, format_span_tree(build_span_tree(spans.get_finished_spans()))))
    else:
        out.write(response.model_dump_json(indent=2) + "\n")
    return 0 if response.success else 1


def format_pretty(response: FunctionResponse, span_tree: str) -> str:
    """A person's view of a response: stdout, result or error, and the span tree."""
    parts = ["── stdout " + "─" * 50, (response.stdout or "").rstrip("\n")]
    if response.success:
        parts += ["── result " + "─" * 50, _result_text(response)]
    else:
        parts += ["── error " + "─" * 51, response.error or ""]
    parts += ["── spans " + "─" * 51, span_tree, ""]
    return "\n".join(parts)


def _result_text(response: FunctionResponse) -> str:
    if response.result is not None:
        return repr(decode_value(response.result, "result"))
    return json.dumps(response.json_result, indent=2)
