"""The function processes of ``isolation="process"``: a zygote, and the child it forks per execution.

``python -m otel_flash.isolation.child FD SETTINGS`` starts the zygote on the SEQPACKET socket
``FD`` shared with the worker (:mod:`otel_flash.isolation.session`), with the executor's
settings as JSON. It imports everything an execution needs once (this module's
imports) and sets up what every child needs (providers, logging bridge, stream
forwarders: :class:`_Child`), then forks on request. A child
receives its control socket and the write ends of its stdout/stderr pipes with the
request (``SCM_RIGHTS``), leads a new session (so the worker can kill its whole
process group), serves exactly one execution over :mod:`otel_flash.isolation.wire` frames,
and is killed by the worker when it has answered::

    worker                              child
    {"op": "load", ...}          ->     compile, resolve, decode the arguments
                                 <-     {"op": "loaded", "qualname": ...}
    {"op": "call", "carrier"}    ->     call; spans and log records stream back as they end
                                 <-     {"op": "returned"}
    {"op": "serialize"}          ->     encode the result
                                 <-     {"op": "encoded", "fields": {...}}

Any step may answer ``{"op": "error", ...}`` instead. The zygote tells the worker
each child's pid (``forked``) and, when it reaps it, its wait status (``exited``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_flash.capture import LogBridge
from otel_flash.exceptions import IsolationError
from otel_flash.isolation.forwarders import TextForwarder
from otel_flash.isolation.messages import (
    ChildMessage,
    ChildReply,
    EncodedReply,
    ErrorReply,
    Frame,
    ZygoteMessage,
)
from otel_flash.isolation.wire import (
    cut_strings,
    encode_bounded,
    frame_limit,
    log_message,
    recv_frame,
    span_message,
)
from otel_flash.protocol import parse_request
from otel_flash.redaction import Redactor
from otel_flash.runtime import (
    CodeCache,
    InstanceRegistry,
    TargetLoader,
    Workspace,
    bind_workspace,
    describe_error,
    encode_result,
    exception_message,
    module_names,
    refuse_shadowing,
)
from otel_flash.telemetry import enable, extract_context, new_logger_provider, new_tracer_provider, threads

_FAILED = 70  # EX_SOFTWARE: the child could not set itself up


def main(argv: Sequence[str] | None = None) -> None:
    """Run the zygote on the socket whose descriptor is the first argument."""
    args = sys.argv[1:] if argv is None else argv
    settings = json.loads(args[1]) if len(args) > 1 else {}
    sock = socket.socket(fileno=int(args[0]))
    _Zygote(sock, _Child(settings)).serve()


class _Zygote:
    """Forks a child per request and reports exit statuses; never runs user code itself."""

    def __init__(self, sock: socket.socket, prepared: _Child) -> None:
        self._sock = sock
        self._prepared = prepared
        self._children: set[int] = set()

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, _ignore)  # a Python handler, so that the wakeup fd is written
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.set_wakeup_fd(wake_w)
        inherited = (self._sock.fileno(), wake_r, wake_w)
        gc.freeze()  # what is imported now is shared copy-on-write by every child
        self._send({"op": "ready", "pid": os.getpid()})
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(wake_r, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select():
                        if key.fd == wake_r:
                            with contextlib.suppress(BlockingIOError):
                                os.read(wake_r, 4096)
                            self._reap()
                        elif not self._fork_one(inherited):
                            return
            finally:
                for pid in self._children:  # the worker is gone: so are its executions
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)

    def _fork_one(self, inherited: tuple[int, ...]) -> bool:
        data, fds, _, _ = socket.recv_fds(self._sock, 1 << 16, 3)
        if not data:
            return False
        request = json.loads(data)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            self._send({"op": "forked", "seq": request.get("seq"), "pid": 0})
            return True
        pid = os.fork()
        if pid == 0:
            _child(fds, self._prepared, inherited)
        for fd in fds:
            os.close(fd)
        self._children.add(pid)
        self._send({"op": "forked", "seq": request.get("seq"), "pid": pid})
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._children.discard(pid)
            self._send({"op": "exited", "pid": pid, "status": status})

    def _send(self, message: ZygoteMessage) -> None:
        with contextlib.suppress(OSError):  # the worker is gone: the next read ends the loop
            self._sock.send(json.dumps(message).encode("ascii"))


def _ignore(signum: int, frame: object) -> None:
    """SIGCHLD handler: the wakeup fd does the work."""


def _child(fds: list[int], prepared: _Child, inherited: tuple[int, ...]) -> NoReturn:
    """The forked child: set itself up, serve one execution, exit without cleanup."""
    code = _FAILED
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in inherited:
            os.close(fd)
        control, out, err = fds
        _redirect(out, err)
        prepared.attach(socket.socket(fileno=control))
        limit_mb = prepared.settings.get("memory_limit_mb")
        if limit_mb:
            limit = int(limit_mb) << 20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        code = prepared.serve()
    except BaseException:  # reported on the captured stderr; the worker sees the exit code
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _redirect(out: int, err: int) -> None:
    """Make the pipes the process's fds 1 and 2, with line-buffered text streams on them."""
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(source, target)
        os.close(source)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = open(fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115  # lives as long as the process
        setattr(sys, f"__{name}__", stream)
        current = getattr(sys, name)
        if isinstance(current, TextForwarder):
            current.original = stream
        else:
            setattr(sys, name, stream)


class _Child:
    """One execution in this process: its own providers streaming to the worker.

    Built in the zygote before any fork (so no child pays for it), attached to its
    control socket in the child. Nothing is sent before that: the zygote runs no code
    that logs, and what it might log is dropped.
    """

    def __init__(self, settings: Frame) -> None:
        self.settings = settings
        self._control: socket.socket | None = None
        self._lock = threading.Lock()
        self._targets = TargetLoader(CodeCache(), InstanceRegistry(1))
        self._call: Callable[[], Any] | None = None
        self._result: Any = None
        self._format: Any = "json"
        line_bytes = int(settings.get("max_line_bytes") or 64 << 10)
        self._limit = frame_limit(line_bytes)
        tracer_provider = enable(new_tracer_provider(Resource({})))
        tracer_provider.add_span_processor(_SpanStreamer(self.send))
        logger_provider = enable(new_logger_provider(Resource({})))
        logger_provider.add_log_record_processor(_LogStreamer(self.send, line_bytes))
        # this process exists for this execution: the global API leads to its providers
        trace.set_tracer_provider(tracer_provider)
        set_logger_provider(logger_provider)
        level = logging.getLevelNamesMapping()[str(settings.get("log_level", "INFO"))]
        LogBridge(logger_provider, level, Redactor())  # the worker redacts what it relays
        if settings.get("propagate_threads"):
            threads.acquire()
        if settings.get("capture_stdio"):
            chunk = self._limit // 16  # characters: JSON takes up to 12 bytes for one
            sys.stdout = TextForwarder(sys.stdout, "stdout", self.send, chunk)
            sys.stderr = TextForwarder(sys.stderr, "stderr", self.send, chunk)

    def attach(self, control: socket.socket) -> None:
        """Start sending to the worker on ``control``."""
        self._control = control

    def send(self, message: ChildMessage) -> None:
        """Send one frame to the worker, cut to fit its limit; if it is gone, so is this execution."""
        if self._control is None:
            return
        frame = encode_bounded(message, self._limit)
        try:
            with self._lock:
                self._control.sendall(frame)
        except OSError:
            os._exit(0)

    def _encoded(self) -> EncodedReply:
        """The result's fields; sent ahead in ``part`` frames when one frame cannot hold them."""
        fields = encode_result(self._result, self._format)
        text = json.dumps(fields, separators=(",", ":"))
        if len(text) + 64 <= self._limit:
            return {"op": "encoded", "fields": fields}
        step = self._limit // 4  # JSON escapes '"' and '\\' in two bytes
        for start in range(0, len(text), step):
            self.send({"op": "part", "text": text[start : start + step]})
        return {"op": "encoded", "parts": -(-len(text) // step)}

    def serve(self) -> int:
        """Answer the worker's requests until it goes away (it kills this process once answered)."""
        if self._control is None:
            return _FAILED
        while True:
            message = recv_frame(self._control)
            if message is None:
                return 0
            self.send(self._handle(message))

    def _handle(self, message: Frame) -> ChildReply:
        carrier = message.get("carrier")
        context = extract_context(carrier) if isinstance(carrier, dict) else None
        token = otel_context.attach(context or otel_context.get_current())
        try:
            op = message.get("op")
            if op == "load":
                return {"op": "loaded", "qualname": self._load(message)}
            if op == "call" and self._call is not None:
                self._result = _run_call(self._call)
                return {"op": "returned"}
            if op == "serialize":
                return self._encoded()
            msg = f"unexpected {op!r} request"
            raise IsolationError(msg)
        except BaseException as exc:  # the user's, or ours: told to the worker either way
            return _error_reply(exc)
        finally:
            _flush_originals()
            otel_context.detach(token)

    def _load(self, message: Frame) -> str:
        sys.path[:] = [str(entry) for entry in message.get("sys_path") or sys.path]
        importlib.invalidate_caches()  # packages may have been installed since the zygote started
        environ = message.get("environ")
        if isinstance(environ, dict):
            os.environ.clear()
            os.environ.update({str(key): str(value) for key, value in environ.items()})
        workspace = message.get("workspace")
        if isinstance(workspace, str):
            os.chdir(workspace)  # safe here: nothing else runs in this process
            otel_context.attach(bind_workspace(Workspace(workspace)))
        modules_path = message.get("modules_path")
        if isinstance(modules_path, str):  # the request's modules: first on the path, for good
            for name in module_names(modules_path):
                refuse_shadowing(name)
            sys.path.insert(0, modules_path)
        request = parse_request(message["request"])
        target = self._targets.load(request)  # function requests only: the worker refuses classes
        self._format = request.serialization_format
        self._call = lambda: target.fn(*target.args, **target.kwargs)
        return target.qualname


def _flush_originals() -> None:
    for forwarder in (sys.stdout, sys.stderr):
        if isinstance(forwarder, TextForwarder):
            forwarder.flush_pending()
    for original in (sys.__stdout__, sys.__stderr__):
        if original is not None:
            with contextlib.suppress(Exception):
                original.flush()


def _run_call(call: Callable[[], Any]) -> Any:
    result = call()
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _error_reply(exc: BaseException) -> ErrorReply:
    if isinstance(exc, MemoryError) and exc.__traceback__ is not None:
        traceback.clear_frames(exc.__traceback__)  # let go of what filled the memory first
    return {
        "op": "error",
        "type": type(exc).__name__,
        "message": exception_message(exc),
        "description": describe_error(exc),
    }


class _SpanStreamer(SpanProcessor):
    """Sends each span to the worker as it ends."""

    def __init__(self, send: Callable[[ChildMessage], None]) -> None:
        self._send = send

    def on_end(self, span: ReadableSpan) -> None:
        self._send(span_message(span))


class _LogStreamer(LogRecordProcessor):
    """Sends each log record to the worker as it is emitted, in the emitting thread.

    Its strings are cut at ``max_line_bytes`` characters first: the worker would cut the
    line anyway, and a record must fit in a frame.
    """

    def __init__(self, send: Callable[[ChildMessage], None], max_chars: int) -> None:
        self._send = send
        self._max_chars = max_chars

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self._send(cut_strings(log_message(log_record), self._max_chars))

    def shutdown(self) -> None:
        """Nothing is held."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is held: every record was sent when emitted."""
        return True


if __name__ == "__main__":
    main()
