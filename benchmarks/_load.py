"""A light HTTP/1.1 load generator in a process of its own, so the clients do not share the bench's GIL.

``python -m benchmarks._load PORT SERVER_PID SECONDS CLIENTS...`` posts the trivial request
(:data:`TRIVIAL`) to ``127.0.0.1:PORT/execute`` from each number of clients in turn and prints
one JSON line per number (:class:`Window`). Each client is one keep-alive connection driven
by an :class:`asyncio.Protocol`: pre-built request bytes are written again as soon as the
previous answer's ``Content-Length`` bytes are in, so a request costs the client one write,
one or two reads and a header scan (no tasks, streams or HTTP library). Every status is
checked; every :data:`CHECK_EVERY`-th body (the first included) is parsed and must say
``success`` with the result 42.

Throughput is counted in a fixed window after a warm-up: answers completed in the window
divided by its length. The client's own CPU time over the window is printed beside it (so a
reader sees whether the client is the bottleneck), and the server's, read from
``/proc/SERVER_PID/stat`` (Linux; None elsewhere), export threads included, and apart from it
that of the server's child processes (its export process).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

WARMUP_S = 0.5
CHECK_EVERY = 64
TRIVIAL = {
    "function_name": "trivial",
    "function_code": (
        "import logging\n\ndef trivial():\n    logging.getLogger('b').warning('one line')\n    return 42\n"
    ),
    "serialization_format": "json",
}


@dataclass(frozen=True, slots=True)
class Window:
    """What one number of clients measured: rate, latency percentiles, CPU of both sides.

    ``requests`` were answered in the window, ``answered`` in all (warm-up included).
    """

    clients: int
    requests: int
    answered: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float
    server_cpu_s: float | None
    children_cpu_s: float | None = None  # the server's child processes: its export process

    @property
    def rate(self) -> float:
        """Answers per second in the window."""
        return self.requests / self.seconds


def request_bytes(port: int, body: dict[str, Any]) -> bytes:
    """The whole ``POST /execute`` request, headers and JSON body."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /execute HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def check_answer(body: bytes) -> None:
    """Raise unless ``body`` is a successful response whose result is 42 (JSON or cloudpickle)."""
    answer = json.loads(body)
    answer = answer.get("output", answer)
    if not answer.get("success"):
        raise RuntimeError(f"the server answered a failure: {body[:500]!r}")
    encoded = answer.get("result")
    result = answer.get("json_result") if encoded is None else pickle.loads(base64.b64decode(encoded))
    if result != 42:
        raise RuntimeError(f"the server answered {result!r}, not 42")


class _Run:
    """The shared clock and tally of one window."""

    def __init__(self, clients: int, measure_from: float, stop_at: float) -> None:
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.latencies: list[float] = []
        self.answered = 0
        self.in_window = 0
        self.open = clients
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def closed_one(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.done.done():
            self.done.set_result(None)


class _Client(asyncio.Protocol):
    """One keep-alive connection posting the same request in a closed loop."""

    def __init__(self, request: bytes, run: _Run) -> None:
        self._request = request
        self._run = run
        self._buffer = bytearray()
        self._body_length: int | None = None
        self._status = 0
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self._run.stop_at:
            self._run.fail(RuntimeError(f"the server closed a connection early ({exc})"))

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter()
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            body = self._whole_body()
            if body is not None:
                self._answered(body)
        except Exception as exc:  # a wrong or unreadable answer ends the run with its reason
            self._run.fail(exc)

    def _whole_body(self) -> bytes | None:
        """The answer's body once all of it is in, else None."""
        if self._body_length is None and not self._read_head():
            return None
        assert self._body_length is not None
        if len(self._buffer) < self._body_length:
            return None
        body = bytes(self._buffer[: self._body_length])
        del self._buffer[: self._body_length]
        self._body_length = None
        return body

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).lower()
        del self._buffer[: end + 4]
        self._status = int(head[9:12])
        start = head.index(b"\r\ncontent-length:") + 17
        stop = head.find(b"\r\n", start)
        self._body_length = int(head[start : stop if stop >= 0 else len(head)])
        return True

    def _answered(self, body: bytes) -> None:
        now = time.perf_counter()
        run = self._run
        if self._status != 200:
            raise RuntimeError(f"status {self._status}: {body[:500]!r}")
        if run.answered % CHECK_EVERY == 0:
            check_answer(body)
        run.answered += 1
        if run.measure_from <= now <= run.stop_at:
            run.in_window += 1
            if run.measure_from <= self._sent_at:
                run.latencies.append(now - self._sent_at)
        if now < run.stop_at:
            self._send()
        else:
            assert self._transport is not None
            self._transport.close()
            run.closed_one()


def server_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads) so far; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds so far of the running child processes of ``pid`` (its export process);
    None off Linux."""
    if not os.path.isdir("/proc"):
        return None
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def measure(port: int, server_pid: int, clients: int, seconds: float) -> Window:
    """One window of ``clients`` connections posting for ``seconds`` after a warm-up."""
    loop = asyncio.get_running_loop()
    measure_from = time.perf_counter() + WARMUP_S
    run = _Run(clients, measure_from, measure_from + seconds)
    request = request_bytes(port, TRIVIAL)
    for _ in range(clients):
        await loop.create_connection(lambda: _Client(request, run), "127.0.0.1", port)
    await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu, server, children = time.process_time(), server_cpu_s(server_pid), children_cpu_s(server_pid)
    await asyncio.sleep(max(0.0, run.stop_at - time.perf_counter()))
    cpu, server_end = time.process_time() - cpu, server_cpu_s(server_pid)
    children_end = children_cpu_s(server_pid)
    await run.done
    latencies = sorted(run.latencies)
    return Window(
        clients=clients,
        requests=run.in_window,
        answered=run.answered,
        seconds=seconds,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        client_cpu_s=cpu,
        server_cpu_s=None if server is None or server_end is None else server_end - server,
        children_cpu_s=None if children is None or children_end is None else children_end - children,
    )


def main(argv: list[str]) -> None:
    """Measure each number of clients given, one JSON line each."""
    port, server_pid, seconds, *clients = argv
    for count in clients:
        window = asyncio.run(measure(int(port), int(server_pid), int(count), float(seconds)))
        print(json.dumps(asdict(window)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
