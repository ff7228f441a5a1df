"""``isolation="process"``: each execution's load, call and serialization in a fresh process.

The worker keeps one zygote (:mod:`otel_flash.isolation.child`) that imported everything once
and forks a clean child per execution: far cheaper than starting Python, and no
execution ever sees what an earlier one left behind. A :class:`ProcessSession`
drives one child through the executor's phases. While it waits for an answer it
reads, in the calling thread and therefore in the execution's OpenTelemetry
context, everything the child sends:

* log records, re-emitted into the worker's LoggerProvider with the child's trace
  and span ids, so the capture processor puts them in the response and the
  exporters see them (:class:`~otel_flash.isolation.relay.Relay`);
* finished spans, handed to the worker's span processors;
* bytes written to the child's file descriptors 1 and 2 (C extensions, programs the
  function starts), line by line, as captured stdout/stderr lines.

A deadline kills the child's process group; a child that dies answers its request
with how it died. Nothing the child sends is unpickled.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider

from otel_flash.capture import ExecutionLog, LineSink
from otel_flash.config import FlashConfig
from otel_flash.exceptions import ExecutionTimeout, FlashError, IsolationError, RequestError
from otel_flash.isolation.endings import describe_status, remote_error
from otel_flash.isolation.messages import Frame, WorkerRequest
from otel_flash.isolation.relay import Relay
from otel_flash.isolation.wire import FrameReader, frame_limit, send_frame
from otel_flash.isolation.zygote import ZygoteHandle
from otel_flash.protocol import FunctionRequest
from otel_flash.redaction import Redactor
from otel_flash.runtime import Workspace
from otel_flash.telemetry import inject_context

_DRAIN_S = 2.0  # after the child ended: a program it started may still hold the pipes
_STATUS_WAIT_S = 5.0
MAX_RESULT_BYTES = 256 << 20  # an encoded result, which a child sends in frame-sized parts
CLASS_REFUSAL = "class instances are not supported with isolation='process'"
SessionState = Literal["idle", "busy", "abandoned", "closed"]


class ProcessIsolation:
    """Runs executions in child processes forked from one zygote; owned by an executor."""

    def __init__(
        self,
        config: FlashConfig,
        tracer_provider: trace.TracerProvider,
        logger_provider: LoggerProvider,
        current_log: Callable[[], ExecutionLog | None],
        redact: Redactor,
        lines: LineSink,
    ) -> None:
        self.config = config
        self.relay = Relay(tracer_provider, logger_provider, redact)
        self.current_log = current_log
        self.lines = lines
        self.zygote = ZygoteHandle(
            {
                "log_level": config.log_level,
                "capture_stdio": config.capture_stdio,
                "propagate_threads": config.propagate_threads,
                "memory_limit_mb": config.memory_limit_mb,
                "max_line_bytes": config.max_line_bytes,
            }
        )
        self.zygote.start()  # it imports while the worker gets ready

    def session(
        self,
        request: FunctionRequest,
        limit_s: float | None,
        workspace: Workspace,
        modules_path: str | None = None,
    ) -> ProcessSession:
        """A session for one execution; no process is forked until :meth:`ProcessSession.load`.

        ``modules_path`` is the directory holding the request's ``modules``: first on the
        child's ``sys.path``.

        Raises:
            RequestError: the request asks for a class instance (not supported in this mode).
        """
        if request.execution_type == "class":
            raise RequestError(CLASS_REFUSAL)
        return ProcessSession(self, request, limit_s, workspace, modules_path)

    def close(self) -> None:
        """Stop the zygote; children still running are killed with it."""
        self.zygote.close()


class ProcessSession:
    """One execution in one child process: ``load``, ``call``, ``serialize``, then ``finish``.

    Each step blocks the calling thread until the child answers, the deadline passes
    (the child's process group is killed: :class:`ExecutionTimeout`) or the child
    dies (:class:`IsolationError` saying how). :meth:`abort` may be called from any
    thread; :meth:`finish` must run after the last step, in the execution's context.

    Its lifecycle is one :data:`SessionState`, changed under its lock: ``idle`` between
    steps, ``busy`` during one, ``abandoned`` when :meth:`abort` came during a step (the
    step's thread closes the session when the step returns), ``closed`` once everything
    is released. Beside it, two facts of the child: whether it was killed (a process
    group is signalled once) and whether its control channel is still open.
    """

    def __init__(
        self,
        owner: ProcessIsolation,
        request: FunctionRequest,
        limit_s: float | None,
        workspace: Workspace,
        modules_path: str | None = None,
    ) -> None:
        self._owner = owner
        self._request = request
        self._modules_path = modules_path
        self._limit_s = limit_s
        self._workspace = workspace
        self._deadline: float | None = None
        self._pid = 0
        self._control: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._pipes: dict[int, tuple[str, codecs.IncrementalDecoder]] = {}
        self._frames = FrameReader(frame_limit(owner.config.max_line_bytes))
        self._parts: list[str] = []
        self._parts_size = 0
        self._reply: Frame | None = None
        self._lock = threading.Lock()
        self._state: SessionState = "idle"
        self._killed = False
        self._listening = False

    def load(self) -> str:
        """Fork the child and load the function there; its qualified name.

        The time limit starts once the child exists: a zygote still importing (the
        worker's first request) is the worker's time, not the function's.
        """
        pid, control, out_r, err_r = self._owner.zygote.fork()
        if self._limit_s is not None:
            self._deadline = time.monotonic() + self._limit_s
        self._pid, self._control = pid, control
        self._selector.register(control, selectors.EVENT_READ)
        self._listening = True
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            self._pipes[fd] = (stream, codecs.getincrementaldecoder("utf-8")(errors="replace"))
            self._selector.register(fd, selectors.EVENT_READ)
        reply = self._exchange(
            {
                "op": "load",
                "request": self._request.model_dump(mode="json", exclude_none=True),
                "carrier": inject_context(),
                "sys_path": list(sys.path),
                "environ": dict(os.environ),
                "workspace": str(self._workspace.path()),
                "modules_path": self._modules_path,
            }
        )
        return str(reply.get("qualname", self._request.function_name))

    def call(self) -> None:
        """Call the loaded function in the child (a coroutine function is run to completion)."""
        self._exchange({"op": "call", "carrier": inject_context()})

    def serialize(self) -> dict[str, Any]:
        """The response fields carrying the result, encoded in the child."""
        reply = self._exchange({"op": "serialize", "carrier": inject_context()})
        fields = reply.get("fields") if "parts" not in reply else self._joined_parts(reply["parts"])
        if not isinstance(fields, dict) or not set(fields) <= {"result", "json_result"}:
            msg = "the function's process sent a malformed result"
            raise IsolationError(msg)
        return fields

    def _joined_parts(self, count: object) -> object:
        parts, self._parts, self._parts_size = self._parts, [], 0
        if count != len(parts):
            return None
        try:
            return json.loads("".join(parts))
        except ValueError:
            return None

    def finish(self) -> None:
        """Kill what is left of the child, take in its last output, release everything."""
        with self._lock:
            if self._state == "closed":
                return
        self._kill()
        self._drain(0.0)  # what was written before the last answer is in the pipes already
        self._close()

    def abort(self) -> None:
        """Kill the child now, from any thread (the execution was abandoned)."""
        self._kill()
        with self._lock:
            if self._state == "busy":
                self._state = "abandoned"
            idle = self._state not in ("busy", "abandoned")
        if idle:
            self._close()

    def _exchange(self, message: WorkerRequest) -> Frame:
        with self._lock:
            if self._state == "closed" or self._control is None:
                msg = "the function's process is gone"
                raise IsolationError(msg)
            self._state = "busy"
        try:
            try:
                send_frame(self._control, message)
            except OSError:  # it died before it could read: say how
                raise self._died() from None
            reply = self._wait_reply()
        finally:
            abandoned = self._step_ended()
        if abandoned:
            self._close()
        if reply.get("op") == "error":
            raise self._remote_error(reply)
        return reply

    def _step_ended(self) -> bool:
        """Back to ``idle`` after a step; True when :meth:`abort` came meanwhile (close now)."""
        with self._lock:
            abandoned = self._state == "abandoned"
            if self._state != "closed":
                self._state = "idle"
        return abandoned

    def _wait_reply(self) -> Frame:
        while self._reply is None:
            if not self._listening:
                raise self._died()
            remaining = None if self._deadline is None else self._deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._timed_out()
            self._pump(remaining)
        reply, self._reply = self._reply, None
        return reply

    def _pump(self, timeout: float | None) -> bool:
        """Read what is ready (waiting at most ``timeout``) and pass it on; False if nothing was."""
        events = self._selector.select(timeout)
        for key, _ in events:
            if self._control is not None and key.fd == self._control.fileno():
                self._read_control()
            else:
                self._read_pipe(key.fd)
        return bool(events)

    def _read_control(self) -> None:
        if self._control is None:
            return
        try:
            data = self._control.recv(1 << 18)
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(self._control)
            self._listening = False
            return
        try:
            messages = self._frames.feed(data)
        except IsolationError as exc:
            raise self._refused(str(exc)) from None
        for message in messages:
            op = message.get("op")
            if op == "log":
                self._owner.relay.log(message)
            elif op == "span":
                self._owner.relay.span(message)
            elif op == "write":
                self._emit_write(message)
            elif op == "part":
                self._add_part(message)
            else:
                self._reply = message

    def _add_part(self, message: Frame) -> None:
        text = message.get("text")
        size = len(text) if isinstance(text, str) else 0
        if self._parts_size + size > MAX_RESULT_BYTES:
            raise self._refused(f"a result of more than {MAX_RESULT_BYTES} bytes")
        self._parts.append(text if isinstance(text, str) else "")
        self._parts_size += size

    def _refused(self, what: str) -> IsolationError:
        """Kill the child, which sent something over a bound, and say so."""
        self._kill()
        if self._control is not None and self._listening:
            self._selector.unregister(self._control)
        self._listening = False
        self._parts, self._parts_size = [], 0
        return IsolationError(f"the function's process was killed: it sent {what}")

    def _read_pipe(self, fd: int) -> None:
        stream, decoder = self._pipes[fd]
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            data = b""
        text = decoder.decode(data, final=not data)
        if text:
            self._emit_output(stream, text)
        if not data:
            self._selector.unregister(fd)
            os.close(fd)
            del self._pipes[fd]

    def _emit_write(self, message: Frame) -> None:
        """A write to the child's ``sys.stdout``/``sys.stderr``, in the span it was made in."""
        text = message.get("text")
        if isinstance(text, str):
            stream = "stderr" if message.get("stream") == "stderr" else "stdout"
            token = otel_context.attach(self._owner.relay.context_of(message))
            try:
                self._emit_output(stream, text)
            finally:
                otel_context.detach(token)

    def _emit_output(self, stream: str, text: str) -> None:
        log = self._owner.current_log() if self._owner.config.capture_stdio else None
        if log is None or log.closed:
            original: TextIO | None = sys.__stdout__ if stream == "stdout" else sys.__stderr__
            if original is not None:
                original.write(text)
            return
        self._owner.lines.deliver(log, stream, log.feed(stream, text))

    def _drain(self, seconds: float) -> None:
        """Take in what the child and its descendants still send, until they close or time passes.

        With ``seconds`` 0: only what is readable now, without waiting for anything more.
        """
        until = time.monotonic() + seconds
        while self._selector.get_map():
            left = until - time.monotonic()
            if seconds and left <= 0:
                return
            with contextlib.suppress(IsolationError):  # a broken frame at the very end: drop it
                if not self._pump(max(left, 0.0)) and not seconds:
                    return

    def _died(self) -> IsolationError:
        """The child stopped answering: take in its last output, learn and tell how it ended."""
        self._drain(_DRAIN_S)
        status = self._owner.zygote.wait_exit(self._pid, _STATUS_WAIT_S)
        if status is None:  # it closed its channel but lives on
            self._kill()
            status = self._owner.zygote.wait_exit(self._pid, _STATUS_WAIT_S)
        return IsolationError(describe_status(status, self._owner.config.memory_limit_mb))

    def _timed_out(self) -> ExecutionTimeout:
        self._kill()
        self._drain(_DRAIN_S)
        return ExecutionTimeout(f"timed out after {self._limit_s:g} s; the function's process was killed")

    def _kill(self) -> None:
        with self._lock:
            if self._killed or not self._pid:
                return
            self._killed = True
        # the child leads its own process group: the programs it started go with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signal.SIGKILL)

    def _close(self) -> None:
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
        for fd in list(self._pipes):
            os.close(fd)
        self._pipes.clear()
        if self._control is not None:
            self._control.close()
        self._selector.close()
        if self._pid:
            self._owner.zygote.forget(self._pid)

    def _remote_error(self, reply: Frame) -> FlashError:
        type_name = str(reply.get("type") or "Exception")
        message = str(reply.get("message", ""))
        description = str(reply.get("description") or f"{type_name}: {message}")
        limit = self._owner.config.memory_limit_mb
        if type_name == "MemoryError" and limit:
            description = f"memory limit of {limit} MB exceeded\n\n{description}"
        return remote_error(type_name, message, description)
