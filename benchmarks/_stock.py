"""What a user writes by hand with the stock OpenTelemetry SDK: the comparison row of ``bench_export``.

The same trivial request as the executor's, four spans (an execution and its load,
call and serialize phases), the user's log line through the stock ``LoggingHandler``,
``print`` captured with ``redirect_stdout``, ``BatchSpanProcessor`` and
``BatchLogRecordProcessor`` with their defaults, OTLP/gRPC.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


class StockExecutor:
    """Runs a request as four stock SDK spans, exporting spans and log records over OTLP/gRPC."""

    def __init__(self, endpoint: str) -> None:
        resource = Resource.create({"service.name": "stock"})
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint, insecure=True)))
        self.logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint, insecure=True))
        )
        self._handler = LoggingHandler(logging.INFO, self.logger_provider)
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(self._handler)
        self._tracer = self.tracer_provider.get_tracer("stock")

    def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run ``request``; the response carries the result and the printed output."""
        tracer = self._tracer
        with tracer.start_as_current_span("execute", kind=SpanKind.SERVER) as root:
            with tracer.start_as_current_span("function.load"):
                namespace: dict[str, Any] = {}
                exec(request["function_code"], namespace)
                function = namespace[request["function_name"]]
            buffer = io.StringIO()
            with tracer.start_as_current_span("function.call"), contextlib.redirect_stdout(buffer):
                result = function()
            with tracer.start_as_current_span("result.serialize"):
                encoded = json.dumps(result)
            trace_id = format(root.get_span_context().trace_id, "032x")
        return {"success": True, "result": encoded, "stdout": buffer.getvalue(), "trace_id": trace_id}

    def shutdown(self) -> None:
        """Export what is queued, stop, and take the handler off the root logger."""
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._level)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


class _Keep(SpanProcessor):
    """Keeps the spans of the last execution."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        """Keep ``span``."""
        self.spans.append(span)


def encode_floor(runs: int) -> None:
    """The floor: create four spans as an execution does and encode them to OTLP protobuf, ``runs`` times."""
    kept = _Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "floor"}), shutdown_on_exit=False)
    provider.add_span_processor(kept)
    tracer = provider.get_tracer("floor")
    for _ in range(runs):
        with tracer.start_as_current_span("execute", kind=SpanKind.SERVER):
            for name in ("function.load", "function.call", "result.serialize"):
                with tracer.start_as_current_span(name):
                    pass
        _encode(kept.spans)
        kept.spans.clear()


def _encode(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()
