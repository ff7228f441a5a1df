"""Real in-process OTLP receivers, and collectors that misbehave, for export tests and benchmarks.

* :class:`GrpcReceiver`: a ``grpc.server`` with the official
  ``opentelemetry.proto.collector.*.v1`` servicers.
* :class:`HttpReceiver`: a ``ThreadingHTTPServer`` decoding ``Export*ServiceRequest``
  protobuf bodies posted to ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics``.
* Both take ``delay_s`` to play a slow collector.
* :class:`BlackHole`: accepts TCP connections and never answers.
* :func:`refused_endpoint`: a loopback port nothing listens on.

What arrives is decoded into :class:`ReceivedSpan`, :class:`ReceivedLog` and
:class:`ReceivedMetric` values; :meth:`Received.wait_for` waits for a condition
instead of sleeping.
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a collector received it; ids are lowercase hex, ``parent_span_id`` '' for a root."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    trace_state: str = ""


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as a collector received it."""

    body: Any
    severity_text: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass(frozen=True)
class ReceivedMetric:
    """One data point: a sum's value or a histogram's count and sum, with its attributes."""

    name: str
    unit: str
    attributes: dict[str, Any]
    value: float
    histogram_sum: float | None
    resource: dict[str, Any]


class Received:
    """The decoded requests a receiver got, safe to read while exports arrive."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.requests: dict[str, list[Any]] = {"traces": [], "logs": [], "metrics": []}
        self.headers: dict[str, list[dict[str, str]]] = {"traces": [], "logs": [], "metrics": []}

    def add(self, signal: str, request: Any, headers: dict[str, str] | None = None) -> None:
        """Keep one decoded export request and the headers (gRPC metadata) it came with."""
        with self._changed:
            self.requests[signal].append(request)
            self.headers[signal].append(headers or {})
            self._changed.notify_all()

    def wait_for(self, condition: Callable[[Received], bool], timeout_s: float = 20.0) -> bool:
        """Wait until ``condition(self)`` holds; False if it still does not after ``timeout_s``."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout_s)

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._changed:
            requests = list(self.requests["traces"])
        return [
            ReceivedSpan(
                span.name,
                span.trace_id.hex(),
                span.span_id.hex(),
                span.parent_span_id.hex(),
                span.kind,
                span.status.code,
                _attributes(span.attributes),
                _attributes(resource_spans.resource.attributes),
                span.trace_state,
            )
            for request in requests
            for resource_spans in request.resource_spans
            for scope in resource_spans.scope_spans
            for span in scope.spans
        ]

    def span_names(self) -> list[str]:
        """Names of the spans received so far."""
        return [span.name for span in self.spans()]

    def logs(self) -> list[ReceivedLog]:
        """Every log record received so far."""
        with self._changed:
            requests = list(self.requests["logs"])
        return [
            ReceivedLog(
                _value(record.body),
                record.severity_text,
                record.trace_id.hex(),
                record.span_id.hex(),
                _attributes(record.attributes),
                _attributes(resource_logs.resource.attributes),
            )
            for request in requests
            for resource_logs in request.resource_logs
            for scope in resource_logs.scope_logs
            for record in scope.log_records
        ]

    def metrics(self) -> list[ReceivedMetric]:
        """Every data point of every metric received so far (sums and histograms)."""
        with self._changed:
            requests = list(self.requests["metrics"])
        return [
            point
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
            for point in _points(metric, _attributes(resource_metrics.resource.attributes))
        ]


class Started:
    """Started on ``__enter__``, stopped on ``__exit__`` (receivers here, the processes of tests/stack.py)."""

    def start(self) -> Self:
        """Start, and wait until it serves."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop, and wait until it has."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Receiver(Started):
    """Start on ``__enter__``, stop on ``__exit__``; ``endpoint`` is the base URL."""

    endpoint: str

    def __init__(self, delay_s: float = 0.0) -> None:
        self.received = Received()
        self.delay_s = delay_s
        self._stopping = threading.Event()

    def wait_before_answering(self) -> None:
        """Play a slow collector (cut short when the receiver stops)."""
        if self.delay_s:
            self._stopping.wait(self.delay_s)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()  # a delayed answer stops waiting first
        super().__exit__(kind, exc, tb)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # gRPC name
        self._receiver.received.add("traces", request, _metadata(context))
        self._receiver.wait_before_answering()
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # gRPC name
        self._receiver.received.add("logs", request, _metadata(context))
        self._receiver.wait_before_answering()
        return logs_service_pb2.ExportLogsServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # gRPC name
        self._receiver.received.add("metrics", request, _metadata(context))
        self._receiver.wait_before_answering()
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcReceiver(_Receiver):
    """An OTLP/gRPC collector on 127.0.0.1 built on the official service stubs."""

    def start(self) -> Self:
        """Bind a free port and serve."""
        self._server = grpc.server(ThreadPoolExecutor(8, thread_name_prefix="otlp-grpc-receiver"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated code
            _TraceService(self), self._server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated code
            _LogsService(self), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated code
            _MetricsService(self), self._server
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop at once, cancelling calls in progress."""
        self._server.stop(grace=None).wait(5)


_REQUESTS: dict[str, tuple[str, type[Any], type[Any]]] = {
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/logs": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}


class HttpReceiver(_Receiver):
    """An OTLP/HTTP (protobuf) collector on 127.0.0.1."""

    def start(self) -> Self:
        """Bind a free port and serve from a background thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                route = _REQUESTS.get(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if route is None:
                    self.send_error(404)
                    return
                signal, request_type, response_type = route
                request = request_type()
                request.ParseFromString(_decompress(body, self.headers.get("Content-Encoding", "")))
                receiver.received.add(
                    signal, request, {key.lower(): value for key, value in self.headers.items()}
                )
                receiver.wait_before_answering()
                payload = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # base signature
                """Quiet: tests read what arrived, not the access log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-http-receiver", daemon=True
        )
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class BlackHole(_Receiver):
    """Accepts TCP connections on 127.0.0.1 and never reads from or answers them."""

    def start(self) -> Self:
        """Listen on a free port."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="otlp-black-hole", daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        return self

    @property
    def connections(self) -> int:
        """How many connections were accepted."""
        return len(self._connections)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(connection)

    def stop(self) -> None:
        """Close every connection and the listener."""
        self._thread.join(5)
        for connection in self._connections:
            connection.close()
        self._listener.close()


def refused_endpoint() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens, so connecting is refused."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _points(metric: Any, resource: dict[str, Any]) -> list[ReceivedMetric]:
    kind = metric.WhichOneof("data")
    if kind == "sum":
        return [
            ReceivedMetric(
                metric.name,
                metric.unit,
                _attributes(point.attributes),
                point.as_int if point.WhichOneof("value") == "as_int" else point.as_double,
                None,
                resource,
            )
            for point in metric.sum.data_points
        ]
    if kind == "histogram":
        return [
            ReceivedMetric(
                metric.name, metric.unit, _attributes(point.attributes), point.count, point.sum, resource
            )
            for point in metric.histogram.data_points
        ]
    return []
