"""Flood: one execution logging 1,000,000 lines of ~200 bytes: µs per line and peak RSS growth."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

LINES = 1_000_000
SCRIPT = textwrap.dedent(
    """
    import gc, json, threading, time, psutil
    from otel_flash import FlashConfig, RemoteExecutor

    code = '''
    import logging, time
    log = logging.getLogger("flood")
    def flood(n):
        started = time.perf_counter_ns()
        for i in range(n):
            log.info("line %07d %s", i, "x" * 180)
        return (time.perf_counter_ns() - started) / n / 1000
    '''
    # RSS sampled every 10 ms: ru_maxrss would also count the parent's memory at fork time
    process, samples, done = psutil.Process(), [], threading.Event()

    def sample():
        while not done.wait(0.01):
            samples.append(process.memory_info().rss)

    with RemoteExecutor(FlashConfig()) as executor:
        request = {"function_name": "flood", "function_code": code, "serialization_format": "json"}
        executor.execute_sync({**request, "args": [1000]})
        gc.collect()
        before = process.memory_info().rss
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        response = executor.execute_sync({**request, "args": [LINES]})
        done.set()
        sampler.join()
    print(json.dumps({"us_per_line": response.json_result, "before": before, "peak": max(samples),
                      "stdout_bytes": len(response.stdout.encode())}))
    """
)


def main() -> None:
    """Run the flood in a fresh subprocess and print its figures."""
    script = SCRIPT.replace("LINES", str(LINES))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    growth = (figures["peak"] - figures["before"]) / 2**20
    print(f"{LINES:,} lines: {figures['us_per_line']:.2f} us/line")
    print(f"peak RSS growth: {growth:.1f} MiB (goal < 32 MiB)")
    print(f"stdout returned: {figures['stdout_bytes']:,} bytes")


if __name__ == "__main__":
    main()
