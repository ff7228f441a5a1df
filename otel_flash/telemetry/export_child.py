"""The export process's loop: ``python -m otel_flash.telemetry.export_child`` (started by the worker).

It reads its setup (the span and log record targets, the redactor; pickled by
:class:`~otel_flash.telemetry.export_process.ExportProcess`) and answers True once its
exporters are built; then, for every batch of flat items, it rebuilds them, exports
them through the redacting exporter the worker would have used, and answers whether the
export succeeded. Its input closing (the worker shut its exporters down, or died) ends
it after its exporters shut down. Reports go to stderr, the worker's own. It runs at the
lowest CPU priority (:data:`_NICENESS`).
"""

from __future__ import annotations

import logging
import marshal
import os
import pickle
import signal
import sys
from typing import IO, Any

from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_flash._internal import internal_logger
from otel_flash.telemetry.export_process import FRAME, ExportBatch, ExportSetup, read_frame
from otel_flash.telemetry.exporters import build_log_exporter, build_span_exporter
from otel_flash.telemetry.flat import OwnerTable, rebuilt
from otel_flash.telemetry.redacting import RedactingLogRecordExporter, RedactingSpanExporter

_SUCCESS = (SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS)
_NICENESS = 19
"""The lowest CPU priority: on a machine with no core to spare (the benchmarks' two, shared with
the load generator) a busy export process otherwise preempts the worker's thread that holds the
GIL, and every execution waits; ``bench_throughput`` measured 0.72x against 0.76-0.78x niced."""


def main() -> int:
    """Serve the worker until its end of the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the worker's to handle
    os.nice(_NICENESS)  # it takes the CPU the worker leaves: its work waits, the executions do not
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the answers' pipe
    reports = logging.StreamHandler(sys.stderr)  # the exporters' own warnings, marked as ours
    reports.setFormatter(logging.Formatter("otel_flash export process %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[reports])
    setup: ExportSetup = pickle.loads(read_frame(source))  # the worker's own, never a caller's
    spans, logs, redact = setup["spans"], setup["logs"], setup["redact"]
    exporters: dict[str, Any] = {}
    if spans is not None:
        exporters["spans"] = RedactingSpanExporter(build_span_exporter(spans, sys.stderr), redact)
    if logs is not None:
        exporters["logs"] = RedactingLogRecordExporter(build_log_exporter(logs, sys.stderr), redact)
    _answer(answers, True)
    owners = OwnerTable()
    try:
        while True:
            try:
                message = read_frame(source)
            except EOFError:
                return 0
            batch: ExportBatch = marshal.loads(message)
            owners.learn(batch["restart"], batch["owners"])
            kind = batch["kind"]
            exported = _export(exporters[kind], kind, batch["items"], owners)
            try:
                _answer(answers, exported)
            except OSError:  # the worker is gone: nobody to answer
                return 0
    finally:
        for exporter in exporters.values():
            exporter.shutdown()


def _export(exporter: Any, kind: str, flat: list[Any], owners: OwnerTable) -> bool:
    try:
        return exporter.export(rebuilt(kind, flat, owners)) in _SUCCESS
    except Exception:  # an exporter's failure is this batch's, not the process's end
        internal_logger().exception("telemetry: exporting a batch of %d %s failed", len(flat), kind)
        return False


def _answer(answers: IO[bytes], value: bool) -> None:
    encoded = marshal.dumps(value)
    answers.write(FRAME.pack(len(encoded)) + encoded)
    answers.flush()


if __name__ == "__main__":
    sys.exit(main())
