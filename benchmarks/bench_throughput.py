"""HTTP throughput: ``otel-flash serve`` vs a worker-flash handler re-creation, 1/8/32 clients, p99.

Each server runs in a process of its own; the clients are asyncio tasks in this
process, each posting the trivial request again as soon as its answer arrives, for a
fixed time. Export on sends spans, logs and metrics over OTLP/gRPC to a receiver in a
third process. Rounds are interleaved; the figures are medians over rounds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchmarks._receiver import ReceiverProcess

SECONDS = 3.0
ROUNDS = 3
CLIENTS = (1, 8, 32)
TRIVIAL = {
    "function_name": "trivial",
    "function_code": (
        "import logging\n\ndef trivial():\n    logging.getLogger('b').warning('one line')\n    return 42\n"
    ),
    "serialization_format": "json",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(kind: str, endpoint: str | None) -> Iterator[str]:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "FLASH_"))}
    if kind == "reference":
        argv = [sys.executable, "-m", "benchmarks._reference_worker", str(port)]
    else:
        argv = [sys.executable, "-m", "otel_flash", "serve", "--port", str(port)]
        env["LOG_LEVEL"] = "WARNING"
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, "/health" if kind == "reference" else "/ping")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _wait_ready(url: str, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:  # 204: still initialising
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    msg = f"{url} did not start"
    raise RuntimeError(msg)


async def _load(url: str, clients: int) -> tuple[float, list[float]]:
    """Requests per second and every latency (s) of ``clients`` posting for ``SECONDS`` (after one more)."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await client.post("/execute", json=TRIVIAL)
        stop = time.perf_counter() + SECONDS

        async def one_client() -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await client.post("/execute", json=TRIVIAL)
                latencies.append(time.perf_counter() - started)
                assert response.json()["success"], response.text

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _measure(kind: str, endpoint: str | None, served: list[int]) -> dict[int, tuple[float, float]]:
    """Per client count: requests/s and p99 latency (ms); ``served`` gets the number of requests."""
    found = {}
    with _server(kind, endpoint) as url:
        for clients in CLIENTS:
            rate, latencies = asyncio.run(_load(url, clients))
            served.append(len(latencies) + 1)
            latencies.sort()
            found[clients] = (rate, latencies[int(len(latencies) * 0.99)] * 1000)
    return found


def main() -> None:
    """Print throughput and p99 per client count, as ratios to the re-created worker-flash handler."""
    rows: dict[str, list[dict[int, tuple[float, float]]]] = {"reference": [], "flash": [], "flash+export": []}
    served: list[int] = []
    with ReceiverProcess() as receiver:
        for _ in range(ROUNDS):
            rows["reference"].append(_measure("reference", None, []))
            rows["flash"].append(_measure("flash", None, []))
            rows["flash+export"].append(_measure("flash", receiver.endpoint, served))
        time.sleep(0.5)  # the last batches, flushed at the server's shutdown, are decoded
        spans, records, _ = receiver.counts()
    print(f"{SECONDS:.0f} s per client count, {ROUNDS} rounds interleaved; medians over rounds")
    print(f"{'server':<34}" + "".join(f"{f'{n} clients':>24}" for n in CLIENTS))
    names = {
        "reference": "worker-flash handler (re-created)",
        "flash": "otel-flash serve, export off",
        "flash+export": "otel-flash serve, export on",
    }
    base = {n: statistics.median(r[n][0] for r in rows["reference"]) for n in CLIENTS}
    off = {n: statistics.median(r[n][0] for r in rows["flash"]) for n in CLIENTS}
    for key, found in rows.items():
        cells = []
        for n in CLIENTS:
            rate = statistics.median(r[n][0] for r in found)
            p99 = statistics.median(r[n][1] for r in found)
            ratio = f"{rate / base[n]:.2f}x" + (f"/{rate / off[n]:.2f}x" if key == "flash+export" else "")
            cells.append(f"{rate:6.0f}/s {ratio:>9} p99 {p99:4.1f}ms")
        print(f"{names[key]:<34}" + "".join(f"{cell:>24}" for cell in cells))
    print("ratios: to the re-created handler (export on: also to export off)")
    requests = sum(served)
    print(
        f"export on, default settings, {requests} requests: {records / requests:.2%} of the user's log "
        f"records arrived; {spans / requests:.2f} spans per request (4 per execution, plus what the "
        "HTTP framework and /ping make)"
    )
