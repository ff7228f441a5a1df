"""Soak test: thousands of mixed requests through one executor; no line lost, none crossed, flat memory.

``python -m benchmarks.soak --seconds 60 --requests 3000 [--mode thread|process|both]``

Each request logs and prints a known number of lines tagged with its own id, then
returns, raises, runs past its time limit, or crashes (``os._exit`` and a segfault in
process mode; ``SystemExit`` in thread mode, where a real crash would take the worker
down). Eight callers send requests at once until the time or the count runs out.
Every response is checked: all of its tagged lines present (else they count as lost),
no line of another request (cross-talk), the expected outcome. The worker's RSS is
sampled at the start, the middle and the end. Exit status 1 if any check failed.
Not named ``bench_*``: ``make bench`` does not run it.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil

from otel_flash import FlashConfig, FunctionResponse, RemoteExecutor
from otel_flash.testing import capture_telemetry

LINES = 5  # tagged log lines and as many tagged print lines per request
CALLERS = 8
CODE = """
import ctypes, logging, os, sys, time
log = logging.getLogger("soak")

def work(tag, kind, lines):
    for i in range(lines):
        log.info("%s log %d", tag, i)
        print(f"{tag} print {i}")
    if kind == "fail":
        raise ValueError(f"{tag} failed on purpose")
    if kind == "timeout":
        time.sleep(1.0)
    if kind == "exit":
        sys.stdout.flush()
        os._exit(3)
    if kind == "segfault":
        ctypes.string_at(0)
    if kind == "system-exit":
        sys.exit(3)
    return tag
"""
KINDS = {
    "thread": ["good"] * 6 + ["fail", "timeout", "system-exit"],
    "process": ["good"] * 6 + ["fail", "timeout", "exit", "segfault"],
}


@dataclass
class Tally:
    """What the responses of one run showed."""

    kinds: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    crossed: int = 0
    wrong_outcome: int = 0
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, number: int, kind: str, response: FunctionResponse) -> None:
        tag = f"soak-{number}"
        lines = (response.stdout or "").splitlines()
        own = sum(1 for line in lines if f"{tag} " in line and " failed on purpose" not in line)
        crossed = [line for line in lines if "soak-" in line and f"{tag} " not in line]
        expected_success = kind == "good"
        with self.lock:
            self.kinds[kind] += 1
            self.lost += max(0, 2 * LINES - own)
            self.crossed += len(crossed)
            if response.success != expected_success:
                self.wrong_outcome += 1
                if len(self.examples) < 5:
                    self.examples.append(
                        f"{tag} ({kind}): success={response.success} error={response.error!r:.200}"
                    )


def _request(number: int, kind: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "function_name": "work",
        "function_code": CODE,
        "args": [f"soak-{number}", kind, LINES],
        "serialization_format": "json",
    }
    if kind == "timeout":
        request["timeout_s"] = 0.2
    return request


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def soak(mode: str, seconds: float, requests: int) -> bool:
    """Run one soak in ``mode``; print its figures; True if every check passed."""
    telemetry = capture_telemetry()
    tally = Tally()
    kinds = itertools.cycle(KINDS[mode])
    config = FlashConfig(isolation="process" if mode == "process" else "thread")
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        executor.execute_sync(_request(-1, "good"))  # warm up
        telemetry.clear()
        rss = {"start": _rss_mb()}
        started = time.monotonic()
        deadline = started + seconds
        counter = itertools.count()
        lock = threading.Lock()

        def caller() -> None:
            while time.monotonic() < deadline:
                with lock:
                    number = next(counter)
                    kind = next(kinds)
                if number >= requests:
                    return
                tally.check(number, kind, executor.execute_sync(_request(number, kind)))
                if number == requests // 2:
                    rss["middle"] = _rss_mb()
                if number % 500 == 0:
                    telemetry.clear()  # the in-memory exporter is ours, not the executor's: keep it small

        with ThreadPoolExecutor(CALLERS) as pool:
            for future in [pool.submit(caller) for _ in range(CALLERS)]:
                future.result()
        elapsed = time.monotonic() - started
        rss["end"] = _rss_mb()
    telemetry.shutdown()
    done = sum(tally.kinds.values())
    print(
        f"## isolation={mode}: {done} requests in {elapsed:.1f} s ({done / elapsed:.0f}/s, {CALLERS} callers)"
    )
    print(f"  kinds: {', '.join(f'{kind} {count}' for kind, count in sorted(tally.kinds.items()))}")
    print(f"  lost lines: {tally.lost} of {done * 2 * LINES}, cross-talk lines: {tally.crossed}")
    print(f"  unexpected outcomes: {tally.wrong_outcome}")
    for example in tally.examples:
        print(f"    {example}")
    middle = rss.get("middle", float("nan"))
    print(f"  worker RSS MB: start {rss['start']:.1f}, middle {middle:.1f}, end {rss['end']:.1f}")
    print(f"  threads alive at the end: {threading.active_count()}")
    return tally.lost == 0 and tally.crossed == 0 and tally.wrong_outcome == 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and soak each mode asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound per mode")
    parser.add_argument("--requests", type=int, default=3000, help="count bound per mode")
    parser.add_argument("--mode", choices=["thread", "process", "both"], default="both")
    args = parser.parse_args(argv)
    modes = ["thread", "process"] if args.mode == "both" else [args.mode]
    results = [soak(mode, args.seconds, args.requests) for mode in modes]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
