"""The ``otel-flash`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_flash.config import FlashConfig
from otel_flash.exceptions import ConfigError, RequestError
from otel_flash.executor import RemoteExecutor
from otel_flash.export_settings import ExportSettings
from otel_flash.http import is_loopback_host
from otel_flash.protocol import FunctionRequest, FunctionResponse, parse_request
from otel_flash.runtime import decode_value, json_bytes, valid_unicode
from otel_flash.telemetry import build_providers, build_span_tree, configure_telemetry, format_span_tree

__all__ = ["build_parser", "main"]

_EXIT_CODES = """exit codes:
  0  the execution succeeded (run); the server stopped cleanly (serve)
  1  the execution failed: the response has success false and an error
  2  usage error, or a request that cannot be read, is not JSON or is not a valid request
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``otel-flash``."""
    parser = argparse.ArgumentParser(
        prog="otel-flash",
        description="Run remote function calls with every moment observable through OpenTelemetry.",
        epilog=_EXIT_CODES + "\nsettings come from the environment: LOG_LEVEL, FLASH_*, OTEL_* (see docs).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_serve(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="execute one FunctionRequest from a JSON file (or - for stdin) and print the response",
        description='Execute one FunctionRequest (plain, or RunPod\'s {"input": ...} envelope)\n'
        "in this process and print the FunctionResponse as JSON on stdout.",
        epilog=_EXIT_CODES + "\nexamples:\n  otel-flash run examples/hello.json\n"
        "  cat request.json | otel-flash run --stream -\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("request", metavar="REQUEST", help="path of a JSON request file, or - to read stdin")
    run.add_argument(
        "--pretty",
        action="store_true",
        help="print the captured stdout, the decoded result and the span tree instead of JSON",
    )
    run.add_argument(
        "--stream",
        action="store_true",
        help="print each captured line on stderr as it is emitted (stdout keeps the response)",
    )


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP worker (needs the server extra: pip install 'otel-flash[server]')",
        description="Run the HTTP worker on uvicorn:\n"
        '  POST /execute         a FunctionRequest (or {"input": ...}) in, the FunctionResponse out\n'
        "  POST /execute/stream  NDJSON: each log line as it is emitted, then the response\n"
        "  GET  /ping            health check\n"
        "SIGTERM or Ctrl-C stops it gracefully: running requests get FLASH_SHUTDOWN_GRACE_S\n"
        "(default 25) seconds to finish, then are answered 'worker shutting down'; telemetry\n"
        "is flushed and the process exits within about 2 s more.\n"
        "On an address other than loopback it refuses to start without an API key\n"
        "(FLASH_API_KEY or --api-key) unless --allow-unauthenticated is given (exit code 2).",
        epilog="example:\n"
        "  FLASH_API_KEY=$(openssl rand -hex 32) otel-flash serve --host 0.0.0.0 --port 8000\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    serve.add_argument(
        "--max-request-bytes",
        type=int,
        default=None,
        metavar="N",
        help="answer 413 to larger request bodies (default: FLASH_MAX_REQUEST_BYTES or 32 MiB)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=None,
        metavar="KEY",
        help="require Authorization: Bearer KEY on /execute (repeat for rotation; default: FLASH_API_KEY,"
        " comma separated); prefer FLASH_API_KEY, as arguments show in the process list",
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="listen on a non-loopback address without an API key, for a gateway that authenticates"
        " (FLASH_ALLOW_UNAUTHENTICATED=1)",
    )
    serve.add_argument(
        "--docs",
        action="store_true",
        default=None,
        help="serve /docs, /redoc and /openapi.json (FLASH_HTTP_DOCS=1)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otel-flash`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.request, pretty=args.pretty, stream=args.stream, out=sys.stdout)
        if args.command == "serve":
            return _serve(args.host, args.port, _serve_overrides(args))
    except ConfigError as exc:
        print(f"otel-flash: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover  # argparse rejects unknown commands first


def _read_request(source: str) -> FunctionRequest:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return parse_request(json.loads(text))


def _run(source: str, *, pretty: bool, stream: bool, out: TextIO) -> int:
    try:
        request = _read_request(source)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, JSON or integer
        reason = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        print(f"otel-flash: cannot read request {source!r}: {reason}", file=sys.stderr)
        return 2
    except RequestError as exc:
        print(f"otel-flash: {source!r}: {exc}", file=sys.stderr)
        return 2
    config = FlashConfig.from_env()
    # The providers the OTEL_* variables configure, plus an in-memory copy of the spans for --pretty.
    telemetry = build_providers(config)
    spans = InMemorySpanExporter()
    tracer_provider = telemetry.tracer_provider
    if isinstance(tracer_provider, TracerProvider):
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    # Bound before the executor routes sys.stderr: a live line written here must not be captured.
    on_line = _LivePrinter(sys.stderr) if stream else None
    try:
        with RemoteExecutor(
            config,
            tracer_provider=tracer_provider,
            logger_provider=telemetry.logger_provider,
            meter_provider=telemetry.meter_provider,
        ) as executor:
            response = executor.execute_sync(request, on_line=on_line)
    finally:
        telemetry.shutdown()
    if pretty:
        tree = format_span_tree(build_span_tree(spans.get_finished_spans()))
        out.write(valid_unicode(format_pretty(response, tree, include_stdout=not stream)))
    else:
        out.write(json_bytes(response.model_dump(mode="json"), indent=2).decode() + "\n")
    return 0 if response.success else 1


class _LivePrinter:
    """Writes each captured line to a stream as it is emitted."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


def _serve_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields ``serve``'s options set (those given: the environment fills the rest)."""
    given = {
        "max_request_bytes": args.max_request_bytes,
        "api_keys": tuple(args.api_key) if args.api_key else None,
        "allow_unauthenticated": args.allow_unauthenticated,
        "http_docs": args.docs,
    }
    return {name: value for name, value in given.items() if value is not None}


def refuse_unauthenticated(host: str, config: FlashConfig) -> str | None:
    """Why ``serve`` must not listen on ``host`` with ``config``, or None when it may."""
    if is_loopback_host(host) or config.api_keys or config.allow_unauthenticated:
        return None
    return (
        f"refusing to serve on {host!r} without an API key: anyone who reaches the port could run code."
        " Set FLASH_API_KEY (or --api-key), or pass --allow-unauthenticated"
        " (FLASH_ALLOW_UNAUTHENTICATED=1) when a gateway in front authenticates."
    )


def _serve(host: str, port: int, overrides: dict[str, Any]) -> int:
    try:
        import uvicorn

        from otel_flash.http.limits import uvicorn_options
        from otel_flash.server import create_app, drain
    except ImportError as exc:
        print(
            f"otel-flash serve needs the server extra: pip install 'otel-flash[server]' ({exc})",
            file=sys.stderr,
        )
        return 2
    # The worker owns its process: OTLP encoding and sending get one of their own (off its GIL).
    export = ExportSettings.from_environ(os.environ, process=True)
    config = FlashConfig.from_env(**overrides, export=export)
    refusal = refuse_unauthenticated(host, config)
    if refusal is not None:
        print(f"otel-flash: {refusal}", file=sys.stderr)
        return 2
    # The worker owns its process: its providers become the global ones, so spans that user
    # code starts with the plain OTel API (trace.get_tracer) join the executions' traces.
    telemetry = configure_telemetry(config)
    app = create_app(config=config, console_log=True, own_process=True)
    # uvicorn re-raises the stopping signal once it has shut down gracefully; with these
    # no-op handlers in place that ends here, so a graceful stop exits 0.
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    grace = config.shutdown_grace_s
    options = uvicorn_options(config)
    settings = uvicorn.Config(app, host=host, port=port, log_level=config.log_level.lower(), **options)
    try:
        _draining_server_class()(settings, lambda: drain(app, grace)).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        telemetry.shutdown()
    return 0


def _draining_server_class() -> type[Any]:
    """``uvicorn.Server`` that starts draining the executor when told to stop (uvicorn is optional)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """Starts ``drain`` in a thread on the first stop signal, before uvicorn waits for requests."""

        def __init__(self, config: uvicorn.Config, drain: Callable[[], int]) -> None:
            super().__init__(config)
            self._drain = drain
            self._draining = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if not self._draining:
                self._draining = True
                threading.Thread(target=self._drain, name="flash-drain", daemon=True).start()
            super().handle_exit(sig, frame)

    return DrainingServer


def _ignore_signal(_signum: int, _frame: FrameType | None) -> None:
    """Stands in while uvicorn runs; uvicorn handles the stop itself."""


def format_pretty(response: FunctionResponse, span_tree: str, *, include_stdout: bool = True) -> str:
    """A person's view of a response: stdout, result or error, and the span tree."""
    parts = ["── stdout " + "─" * 50, (response.stdout or "").rstrip("\n")] if include_stdout else []
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
