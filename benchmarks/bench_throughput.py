"""HTTP throughput: ``otel-flash serve`` vs a worker-flash handler re-creation, 1/8/32 clients, p99.

Each server runs in a process of its own and the clients in another (``benchmarks._load``:
keep-alive connections on raw asyncio, each posting the trivial request again as soon as its
answer arrives), for a fixed window after a warm-up. Export on sends spans, logs and metrics
over OTLP/gRPC to a receiver in a fourth process: spans and logs through ``serve``'s export
process (its default), and in a row of their own from the server's own threads
(``FLASH_EXPORT_PROCESS=0``). Rounds are interleaved; the figures are
medians over rounds. Beside the rates: each server's CPU per answer (export threads
included; its export process's apart) and the client's own CPU, as a share of one core, to
show whether it bounds them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import httpx

from benchmarks._load import Window
from benchmarks._receiver import ReceiverProcess
from tests.stack import clean_env, free_port

SECONDS = 3.0
ROUNDS = 3
CLIENTS = (1, 8, 32)
ROWS = {
    "reference": "worker-flash handler (re-created)",
    "flash": "otel-flash serve, export off",
    "flash+export": "otel-flash serve, export on",
    "flash+threads": "  same, no export process",
}


class _Served(NamedTuple):
    port: int
    pid: int


@contextmanager
def _server(kind: str, endpoint: str | None) -> Iterator[_Served]:
    port = free_port()
    env = clean_env()
    if kind == "reference":
        argv = [sys.executable, "-m", "benchmarks._reference_worker", str(port)]
    else:
        argv = [sys.executable, "-m", "otel_flash", "serve", "--port", str(port)]
        env["LOG_LEVEL"] = "WARNING"
        env["FLASH_EXPORT_PROCESS"] = "0" if kind == "flash+threads" else "1"
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(f"http://127.0.0.1:{port}" + ("/health" if kind == "reference" else "/ping"))
        yield _Served(port, process.pid)
    finally:
        process.terminate()
        process.wait(30)


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:  # 204: still initialising
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    msg = f"{url} did not start"
    raise RuntimeError(msg)


def _measure(kind: str, endpoint: str | None) -> dict[int, Window]:
    """One window per client count against a fresh server of ``kind``."""
    with _server(kind, endpoint) as served:
        argv = [sys.executable, "-m", "benchmarks._load", str(served.port), str(served.pid), str(SECONDS)]
        output = subprocess.run(argv + [str(n) for n in CLIENTS], capture_output=True, text=True, check=False)
    if output.returncode != 0:
        msg = f"the load generator failed against {kind}: {output.stderr[-2000:]}"
        raise RuntimeError(msg)
    windows = [Window(**json.loads(line)) for line in output.stdout.splitlines()]
    return {window.clients: window for window in windows}


def _median(found: list[dict[int, Window]], clients: int, value: str) -> float:
    return statistics.median(float(getattr(round_[clients], value)) for round_ in found)


def _rates(rows: dict[str, list[dict[int, Window]]]) -> None:
    base = {n: _median(rows["reference"], n, "rate") for n in CLIENTS}
    off = {n: _median(rows["flash"], n, "rate") for n in CLIENTS}
    print(f"{'requests/s, ratio, p99':<34}" + "".join(f"{f'{n} clients':>26}" for n in CLIENTS))
    for key, found in rows.items():
        cells = []
        for n in CLIENTS:
            rate, p99 = _median(found, n, "rate"), _median(found, n, "p99_ms")
            ratio = f"{rate / base[n]:.2f}x" + (f"/{rate / off[n]:.2f}x" if key.startswith("flash+") else "")
            cells.append(f"{rate:6.0f}/s {ratio:>11} p99 {p99:5.1f}ms")
        print(f"{ROWS[key]:<34}" + "".join(f"{cell:>26}" for cell in cells))
    print("ratios: to the re-created handler (export on: also to export off); p99 of the window's latencies")


def _cpu(rows: dict[str, list[dict[int, Window]]]) -> None:
    print(f"{'CPU: server per answer, client':<34}" + "".join(f"{f'{n} clients':>26}" for n in CLIENTS))
    for key, found in rows.items():
        cells = []
        for n in CLIENTS:
            per_answer = _cpu_per_answer(found, n)
            server = f"{per_answer:3.0f}" if per_answer is not None else "n/a"
            children = _cpu_per_answer(found, n, "children_cpu_s")
            server += f"+{children:.0f} us" if children else " us"
            client = statistics.median(r[n].client_cpu_s / r[n].seconds for r in found)
            cells.append(f"{server}, client {client:4.0%}")
        print(f"{ROWS[key]:<34}" + "".join(f"{cell:>26}" for cell in cells))
    print(
        "server CPU per answer: all its threads (+ its export process, when it has one); "
        "client: the load generator's CPU as a share of one core"
    )
    added = []
    for n in CLIENTS:
        off, on = (_cpu_per_answer(rows[key], n) for key in ("flash", "flash+export"))
        if off is not None and on is not None:  # 0.8x of export off's rate allows off / 4 more per answer
            added.append(f"{n} clients +{on - off:.0f} us (0.8x allows +{off / 4:.0f})")
    if added:
        print("export on adds per answer: " + ", ".join(added))


def _cpu_per_answer(found: list[dict[int, Window]], clients: int, what: str = "server_cpu_s") -> float | None:
    """The median over rounds of the server's CPU per answer (``what``: all its threads, or its child
    processes); None off Linux."""
    windows = [r[clients] for r in found]
    per_answer = [getattr(w, what) / w.requests * 1e6 for w in windows if getattr(w, what) is not None]
    return statistics.median(per_answer) if per_answer else None


def main() -> None:
    """Print throughput, p99 and CPU per client count, as ratios to the re-created worker-flash handler."""
    rows: dict[str, list[dict[int, Window]]] = {key: [] for key in ROWS}
    with ReceiverProcess() as receiver:
        for _ in range(ROUNDS):
            rows["reference"].append(_measure("reference", None))
            rows["flash"].append(_measure("flash", None))
            rows["flash+export"].append(_measure("flash", receiver.endpoint))
            rows["flash+threads"].append(_measure("flash+threads", receiver.endpoint))
        time.sleep(0.5)  # the last batches, flushed at the server's shutdown, are decoded
        spans, records, _ = receiver.counts()
    print(f"{SECONDS:.0f} s per client count, {ROUNDS} rounds interleaved; medians over rounds")
    _rates(rows)
    _cpu(rows)
    exported = (rows["flash+export"], rows["flash+threads"])
    requests = sum(window.answered for rows_ in exported for found in rows_ for window in found.values())
    print(
        f"export on, default settings, {requests} requests: {records / requests:.2%} of the user's log "
        f"records arrived; {spans / requests:.2f} spans per request (4 per execution, plus what the "
        "HTTP framework and /ping make)"
    )
