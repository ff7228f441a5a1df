"""Redaction: time at 2n over time at n for adversarial lines (1.0-2.5 is linear), and its cost per span."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.trace import ReadableSpan

from otel_flash.redaction import Redactor
from otel_flash.telemetry.redacting import redact_log_record, redact_span
from otel_flash.testing import capture_telemetry

N = 512 << 10  # characters at n; 2n is 1 MiB
SECRET = "sk-live-0123456789abcdef"
# one adversarial shape per pattern: long runs that start a match everywhere and end none
SHAPES: dict[str, str] = {
    "url userinfo (a.a.a...@)": "a.",
    "url scheme runs (a://a:)": "a://a:",
    "authorization": "authorization: ",
    "authorization value": "AuthoRization=Bearer ",
    "query parameters (?token=)": "?token=",
    "query parameter names": "&" + "k" * 63,
    "secret value prefixes": SECRET[:-1] + " ",
}
TYPICAL = "2026-11-28 12:00:00 | INFO | app.worker | processed item 12345 of 99999 in 3.2 ms"
# what the URL pattern was before issue 11: quadratic in a run of scheme characters
_OLD_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def _best(action: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def _line(shape: str, size: int) -> str:
    return (shape * (size // len(shape) + 1))[:size] + "@ x://"


def scaling() -> None:
    """Each shape at n and 2n: seconds and the ratio."""
    redact = Redactor({SECRET})
    for name, shape in SHAPES.items():
        line_n, line_2n = _line(shape, N), _line(shape, 2 * N)
        at_n = _best(functools.partial(redact, line_n))
        at_2n = _best(functools.partial(redact, line_2n))
        figures = f"n=512 KiB {at_n * 1e3:7.2f} ms   2n=1 MiB {at_2n * 1e3:7.2f} ms"
        print(f"{name:30} {figures}   2n/n {at_2n / at_n:4.2f}")
    small = 16 << 10
    old_n = _best(lambda: _OLD_USERINFO.sub("***", _line("a.", small)), 1)
    old_2n = _best(lambda: _OLD_USERINFO.sub("***", _line("a.", 2 * small)), 1)
    print(
        f"{'before: url userinfo':30} n=16 KiB {old_n * 1e3:8.1f} ms   2n=32 KiB {old_2n * 1e3:7.1f} ms"
        f"   2n/n {old_2n / old_n:4.2f}   (1 MiB extrapolated: {old_n * (N * 2 / small) ** 2:.0f} s)"
    )


def typical() -> None:
    """ns per typical log line, without and with a secret in it."""
    redact = Redactor({SECRET})
    loops = 100_000
    for label, line in (("typical line", TYPICAL), ("line with a secret", f"{TYPICAL} key={SECRET}")):
        seconds = _best(functools.partial(_repeat, redact, line, loops))
        print(f"{label:30} {seconds / loops * 1e9:7.0f} ns")


def _repeat(redact: Redactor, line: str, loops: int) -> None:
    for _ in range(loops):
        redact(line)


def _spans() -> list[ReadableSpan]:
    capture = capture_telemetry()
    tracer = capture.tracer_provider.get_tracer("bench")
    with tracer.start_as_current_span("flash.execute") as root:
        root.set_attributes({"flash.function.name": "work", "code.function.name": "w", "flash.success": True})
        with tracer.start_as_current_span("flash.function.call") as call:
            call.set_attributes({"flash.phase": "call", "flash.duration_ms": 1.5, "user.id": "u-12345"})
            call.add_event("checkpoint", {"step": 3, "message": "halfway through the batch"})
    return capture.spans()


def _records() -> list[ReadableLogRecord]:
    capture = capture_telemetry()
    handler = LoggingHandler(logger_provider=capture.logger_provider)
    handler.emit(logging.makeLogRecord({"msg": "processed item 12345", "levelno": 30, "tenant": "acme"}))
    return capture.log_records()


def export_cost() -> None:
    """ns per span and per log record that the export wrappers add when nothing matches."""
    redact = Redactor({SECRET})
    spans, records = _spans(), _records()
    loops = 20_000
    span_s = _best(lambda: [redact_span(span, redact) for _ in range(loops) for span in spans])
    record_s = _best(lambda: [redact_log_record(record, redact) for _ in range(loops) for record in records])
    encode_s = _best(lambda: [encode_spans(spans).SerializeToString() for _ in range(loops // 10)])
    per_span, per_record = span_s / loops / len(spans), record_s / loops / len(records)
    encoding = encode_s / (loops // 10) / len(spans)
    print(f"{'export redaction per span':30} {per_span * 1e9:7.0f} ns (nothing to redact)")
    print(f"{'export redaction per record':30} {per_record * 1e9:7.0f} ns (nothing to redact)")
    print(f"{'(OTLP encoding per span)':30} {encoding * 1e9:7.0f} ns (what exporting costs anyway)")


def main() -> None:
    """Print the scaling figure of every pattern, the typical-line cost and the per-span cost."""
    scaling()
    typical()
    export_cost()


if __name__ == "__main__":
    main()
