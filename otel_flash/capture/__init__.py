"""From a log record or a write to one execution's log and stdout lines (internal).

Modules: ``processor`` (the ``LogRecordProcessor`` and the log it fills), ``buffer`` (the
bounded head-and-tail lines), ``render`` (pure line rendering), ``stdio`` (per-execution
``sys.stdout``/``sys.stderr``), ``bridge`` (the logging bridge on the root logger),
``echo`` (captured lines echoed to the container's stdout), ``records`` (the log records
its bridge and streams make and give up once emitted).
"""

from otel_flash.capture.bridge import LogBridge
from otel_flash.capture.echo import LineEcho, resolve_auto
from otel_flash.capture.processor import CapturedLog, CaptureProcessor, ExecutionLog, LineSubscriber
from otel_flash.capture.render import LineRenderer, report_line, utf8_size
from otel_flash.capture.stdio import LineSink, StdioRouting

__all__ = [
    "CaptureProcessor",
    "CapturedLog",
    "ExecutionLog",
    "LineEcho",
    "LineRenderer",
    "LineSink",
    "LineSubscriber",
    "LogBridge",
    "StdioRouting",
    "report_line",
    "resolve_auto",
    "utf8_size",
]
