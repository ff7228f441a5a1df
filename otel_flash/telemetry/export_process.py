"""OTLP encoding and sending in a process of its own, off the worker's GIL.

Encoding a request's spans and log record and sending them costs the worker ~25 µs of
CPU per request, and the export threads hold the GIL while they do it: under load every
execution waits for them. With :attr:`ExportSettings.process
<otel_flash.export_settings.ExportSettings.process>` (``FLASH_EXPORT_PROCESS``; on by
default in ``otel-flash serve`` and the RunPod handler), the export queues' OTLP
exporters are :class:`ProcessSpanExporter` and :class:`ProcessLogRecordExporter`:

* the queues keep items flat (:meth:`ProcessSpanExporter.prepare`, plain tuples made as
  an item is queued, :mod:`otel_flash.telemetry.flat`);
* a batch is written to a pipe by ``marshal``, and an export process
  (``python -m otel_flash.telemetry.export_child``) redacts, encodes and sends it with
  the exporters the worker would have used, then answers whether the export succeeded;
* the export thread waits for that answer with the GIL released, so batching, bounds,
  delivery counts, flush and shutdown are the export queue's as before.

The export process starts with the exporters (the first batch waits for its setup) and
ends when they shut down, or when the worker dies (its input closes). A batch that
``marshal`` cannot carry (a value of a type of its own) is rebuilt and exported by the
worker, as without the process. When the process cannot start or exits, the worker
reports it once on ``flash.internal`` and exports from its own threads from then on (a
batch lost with the process counts as a failed export).
"""

from __future__ import annotations

import marshal
import os
import pickle
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import IO, Any, Literal, TypedDict

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_flash._internal import internal_logger
from otel_flash.export_settings import SignalExport
from otel_flash.redaction import Redactor
from otel_flash.telemetry.flat import Owners, flattened, rebuilt

__all__ = ["ExportBatch", "ExportProcess", "ExportSetup", "ProcessLogRecordExporter", "ProcessSpanExporter"]

Kind = Literal["spans", "logs"]


class ExportSetup(TypedDict):
    """The export process's first message: its targets and redactor (pickled; the worker's own)."""

    spans: SignalExport | None
    logs: SignalExport | None
    redact: Redactor


class ExportBatch(TypedDict):
    """One batch for the export process (``marshal``: plain values only); answered True or False."""

    kind: Kind
    restart: bool  # forget every owner described so far (:class:`~otel_flash.telemetry.flat.Owners`)
    owners: list[tuple[Any, ...]]  # the owners described since the batch before
    items: list[tuple[Any, ...]]  # flat spans or log records


FRAME = struct.Struct("<I")  # each message and answer: its length, then its marshal bytes
CHILD_MODULE = "otel_flash.telemetry.export_child"
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MAX_MESSAGE = 1 << 30
_EXIT_WAIT_S = 5.0  # how long the process may take to shut its exporters down before it is killed


class ExportProcess:
    """The export process shared by a worker's span and log record exporters.

    ``spans`` and ``logs`` are the targets it exports to (None: that signal is not
    sent through it); ``redact`` is applied there to everything, as in the worker.
    """

    def __init__(self, spans: SignalExport | None, logs: SignalExport | None, redact: Redactor) -> None:
        self._setup = pickle.dumps(ExportSetup(spans=spans, logs=logs, redact=redact))
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._owners = Owners()
        self._gone = False  # the process failed: the worker exports in its own threads
        self._closed = False  # every exporter shut down
        self._users = 0
        self._users_lock = threading.Lock()
        self._ready = False
        weak_reset = weakref.WeakMethod(self._forget_child)
        os.register_at_fork(after_in_child=lambda: _call_alive(weak_reset))
        self._spawn()  # now: it imports while the worker starts, not while the first batch waits

    def user(self) -> ExportProcess:
        """Count one more exporter sending through the process (each shuts down once)."""
        with self._users_lock:
            self._users += 1
        return self

    def flat(self, kind: Kind, items: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``items`` (spans or log records) as the queue keeps them: flat (any thread, never waits)."""
        return flattened(kind, items, self._owners)

    def rebuilt(self, kind: Kind, flat: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The SDK spans or log records of ``flat`` items, for the worker's own exporter."""
        return rebuilt(kind, flat, self._owners)

    def export(self, kind: Kind, flat: Sequence[tuple[Any, ...]]) -> bool | None:
        """Export ``flat`` items through the process: whether it succeeded, or None if the worker must.

        None means nothing was sent: the process is gone, or a value among the items is
        one ``marshal`` cannot carry.
        """
        with self._lock:
            if self._closed:
                return False  # as an exporter shut down answers
            child = self._ready_child()
            if child is None:
                return None
            restart, new = self._owners.take_new()
            try:
                batch = ExportBatch(kind=kind, restart=restart, owners=new, items=list(flat))
                message = marshal.dumps(dict(batch))
            except ValueError:
                self._owners.describe_again()  # what take_new described was never sent
                return None
            answer = self._ask(child, message)
            if answer is None:
                if not self._closed:  # else shutdown stopped a process stuck on this batch
                    self._fail("exited while exporting")
                return False
            return bool(answer)

    def _ready_child(self) -> subprocess.Popen[bytes] | None:
        """The process, set up (started now if it is not yet); None when it is gone."""
        if self._gone:
            return None
        child = self._child or self._spawn()
        if child is not None and not self._ready:
            stdout = child.stdout
            try:
                ready = stdout is not None and marshal.loads(read_frame(stdout)) is True
            except (OSError, EOFError, ValueError, TypeError):
                ready = False
            if not ready:
                self._fail("could not set up its exporters")
                return None
            self._ready = True
        return child

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """Start the process and send its setup (its answer is read before the first batch)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT, env.get("PYTHONPATH"))))
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            self._fail(f"could not start ({exc})")
            return None
        self._child, self._ready = child, False
        self._owners.describe_again()  # a new process knows no owner yet
        if not _send(child, self._setup):
            self._fail("could not be set up")
            return None
        return child

    def _ask(self, child: subprocess.Popen[bytes], message: bytes) -> Any:
        """Send one message and read its answer; None if the process is gone."""
        if not _send(child, message) or child.stdout is None:
            return None
        try:
            return marshal.loads(read_frame(child.stdout))
        except (OSError, EOFError, ValueError, TypeError):
            return None

    def _fail(self, what: str) -> None:
        """Stop using the process; the worker exports in its own threads from now on."""
        self._gone = True
        child, self._child = self._child, None
        code = _stop(child, 0.0) if child is not None else None
        exited = f" (exit code {code})" if code is not None else ""
        internal_logger().warning(
            "telemetry: the export process %s%s; exporting from the worker's own threads from now on",
            what,
            exited,
        )

    def shutdown(self) -> None:
        """One exporter is done; the last one ends the process.

        Every batch sent was answered, so the process holds nothing to flush: it gets
        :data:`_EXIT_WAIT_S` to shut its exporters down. A process still stuck on a batch
        after that long (a black-holed collector) is killed, and the batch counts as failed.
        """
        with self._users_lock:
            self._users -= 1
            if self._users > 0:
                return
        self._closed = True
        idle = self._lock.acquire(timeout=_EXIT_WAIT_S)
        try:
            child, self._child = self._child, None
        finally:
            if idle:
                self._lock.release()
        if child is not None:
            _stop(child, _EXIT_WAIT_S if idle else 0.0)

    def _forget_child(self) -> None:
        """In a forked child: the parent's process is not ours; ours starts with the first batch.

        Our copies of its pipes point at ``/dev/null`` from now on: the parent's process
        still sees its input close when the parent closes it, and nothing buffered here
        can reach it.
        """
        self._lock, self._users_lock = threading.Lock(), threading.Lock()
        child, self._child, self._ready = self._child, None, False
        self._owners.after_fork()
        if child is not None:
            null = os.open(os.devnull, os.O_RDWR)
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    os.dup2(null, pipe.fileno())
            os.close(null)


def _send(child: subprocess.Popen[bytes], message: bytes) -> bool:
    """Write one message to the process; False if it is gone."""
    if child.stdin is None:
        return False
    try:
        child.stdin.write(FRAME.pack(len(message)) + message)
        child.stdin.flush()
    except (OSError, ValueError):  # ValueError: its input closed here
        return False
    return True


def read_frame(stream: IO[bytes]) -> bytes:
    """One message of the pipe, its bytes: ``EOFError`` when the pipe closed."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        raise EOFError
    (size,) = FRAME.unpack(head)
    if size > _MAX_MESSAGE:
        raise ValueError(size)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return body


def _stop(child: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """Close the process's input (it exits once its exporters shut down); kill it after ``timeout_s``."""
    try:
        if child.stdin is not None:
            child.stdin.close()
    except OSError:
        pass
    try:
        code = child.wait(timeout_s) if timeout_s > 0 else child.poll()
    except subprocess.TimeoutExpired:
        code = None
    if code is None:
        child.kill()
        code = child.wait()
    if child.stdout is not None:
        child.stdout.close()
    return code


class _ThroughProcess:
    """An exporter sending through an :class:`ExportProcess`; the worker's own one when it cannot.

    ``fallback`` makes the worker's own exporter, the first time a batch needs it.
    """

    kind: Kind
    _results: tuple[Any, Any]  # the signal's export results: success, failure

    def __init__(self, process: ExportProcess, fallback: Callable[[], Any]) -> None:
        self._process = process.user()
        self._make = fallback
        self._fallback: Any = None
        self._lock = threading.Lock()

    def prepare(self, items: Sequence[Any]) -> list[tuple[Any, ...]]:
        """What the export queue keeps of ``items``: flat, in the form :meth:`export` takes."""
        return self._process.flat(self.kind, items)

    def export(self, batch: Sequence[Any]) -> Any:
        """Send a batch of flat items; the worker's exporter takes it when the process cannot."""
        sent = self._process.export(self.kind, batch)
        if sent is None:
            with self._lock:
                if self._fallback is None:
                    self._fallback = self._make()
                fallback = self._fallback
            return fallback.export(self._process.rebuilt(self.kind, batch))
        return self._results[0] if sent else self._results[1]

    def shutdown(self) -> None:
        """End the process once every exporter using it is done; shut the fallback down."""
        self._process.shutdown()
        with self._lock:
            fallback, self._fallback = self._fallback, None
        if fallback is not None:
            fallback.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is held here: an export returns once the process has sent the batch."""
        return True


class ProcessSpanExporter(_ThroughProcess, SpanExporter):
    """Exports spans through an :class:`ExportProcess`."""

    kind = "spans"
    _results = (SpanExportResult.SUCCESS, SpanExportResult.FAILURE)


class ProcessLogRecordExporter(_ThroughProcess, LogRecordExporter):
    """Exports log records through an :class:`ExportProcess`."""

    kind = "logs"
    _results = (LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE)


def _call_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    found = method()
    if found is not None:
        found()
