"""The worker's end of the zygote (:mod:`otel_flash.child`): forks on request, learns how children end."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading

from otel_flash.exceptions import IsolationError
from otel_flash.wire import Message

_START_TIMEOUT_S = 60.0  # the zygote imports the SDK once: slow on a loaded machine
_WAIT_S = 5.0


class Zygote:
    """The worker's end of the zygote: asks for forks, learns how the children ended.

    A reader thread takes every message the zygote sends; the zygote is (re)started
    on demand, so a zygote that died costs one request a restart, not the worker.
    """

    def __init__(self, settings: Message) -> None:
        self._settings = json.dumps(settings)
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._seq = 0
        self._forked: dict[int, int] = {}
        self._watched: set[int] = set()
        self._statuses: dict[int, int] = {}
        self._closed = False

    def start(self) -> None:
        """Start the zygote unless it runs."""
        with self._cond:
            if self._sock is None and not self._closed:
                self._start()

    def wait_ready(self, timeout: float) -> bool:
        """Start the zygote unless it runs; True once it has imported and can fork."""
        self.start()
        with self._cond:
            return self._cond.wait_for(lambda: self._ready or self._sock is None, timeout) and self._ready

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "otel_flash.child", str(theirs.fileno()), self._settings],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is the worker's to handle
            )
        self._sock, self._process, self._ready = ours, process, False
        threading.Thread(target=self._read, args=(ours, process), name="flash-zygote", daemon=True).start()

    def fork(self) -> tuple[int, socket.socket, int, int]:
        """A new child: its pid, the worker's end of its control socket, its stdout and stderr pipes.

        Raises:
            IsolationError: the zygote cannot be started or does not fork.
        """
        control, child_control = socket.socketpair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = self._request_fork([child_control.fileno(), out_w, err_w])
        except BaseException:
            control.close()
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            child_control.close()
            os.close(out_w)
            os.close(err_w)
        return pid, control, out_r, err_r

    def _request_fork(self, fds: list[int]) -> int:
        with self._cond:
            if self._closed:
                msg = "the executor is shut down"
                raise IsolationError(msg)
            if self._sock is None:
                self._start()
            if not self._cond.wait_for(lambda: self._ready or self._sock is None, _START_TIMEOUT_S):
                msg = f"the zygote process did not start within {_START_TIMEOUT_S:g} s"
                raise IsolationError(msg)
            sock = self._sock
            if sock is None:
                msg = "the zygote process exited at start (see the worker's stderr)"
                raise IsolationError(msg)
            self._seq += 1
            seq = self._seq
            socket.send_fds(sock, [json.dumps({"seq": seq}).encode("ascii")], fds)
            if not self._cond.wait_for(
                lambda: seq in self._forked or self._sock is not sock, _START_TIMEOUT_S
            ):
                msg = "the zygote process did not fork in time"
                raise IsolationError(msg)
            pid = self._forked.pop(seq, 0)
        if not pid:
            msg = "the zygote process could not fork"
            raise IsolationError(msg)
        return pid

    def wait_exit(self, pid: int, timeout: float) -> int | None:
        """The wait status of child ``pid`` once the zygote reaped it, or None after ``timeout``."""
        with self._cond:
            self._cond.wait_for(lambda: pid in self._statuses or self._sock is None, timeout)
            return self._statuses.pop(pid, None)

    def forget(self, pid: int) -> None:
        """Nobody will ask how ``pid`` ended."""
        with self._cond:
            self._watched.discard(pid)
            self._statuses.pop(pid, None)

    def _read(self, sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._cond:
                self._take(message)
                self._cond.notify_all()
        with self._cond:
            if self._sock is sock:
                self._sock = None
            self._cond.notify_all()
        sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_WAIT_S)

    def _take(self, message: Message) -> None:
        op, pid = message.get("op"), int(message.get("pid") or 0)
        if op == "ready":
            self._ready = True
        elif op == "forked":
            self._forked[int(message["seq"])] = pid
            if pid:
                self._watched.add(pid)
        elif op == "exited" and pid in self._watched:
            self._watched.discard(pid)
            self._statuses[pid] = int(message["status"])

    def close(self) -> None:
        """Stop the zygote (it kills the children it has left) and wait for it briefly."""
        with self._cond:
            self._closed = True
            sock, process = self._sock, self._process
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if process is not None:
            try:
                process.wait(_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
