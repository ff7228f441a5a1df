"""One execution logging a million lines stays bounded in memory and in stdout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

FLOOD = textwrap.dedent(
    '''
    import gc, json, logging, psutil
    from otel_flash import FlashConfig, RemoteExecutor

    code = """
    import logging
    log = logging.getLogger("flood")
    def flood(n):
        for i in range(n):
            log.info("line %07d %s", i, "x" * 180)
    """
    import threading
    process, samples, done = psutil.Process(), [], threading.Event()

    def sample():  # peak RSS, sampled every 10 ms while the flood runs
        while not done.wait(0.01):
            samples.append(process.memory_info().rss)

    with RemoteExecutor(FlashConfig()) as executor:
        request = {"function_name": "flood", "function_code": code, "args": [1000],
                   "serialization_format": "json"}
        executor.execute_sync(request)  # warm up: imports, caches
        gc.collect()
        before = process.memory_info().rss
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        response = executor.execute_sync({**request, "args": [1_000_000]})
        done.set()
        sampler.join()
        peak = max(samples)
    print(json.dumps({"growth": peak - before, "stdout": response.stdout, "success": response.success}))
    '''
)


def test_million_lines_keep_memory_and_stdout_bounded() -> None:
    """Head, one exact marker and tail survive; RSS grows by well under 32 MiB."""
    result = subprocess.run(
        [sys.executable, "-c", FLOOD], capture_output=True, text=True, timeout=110, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["success"]
    lines = report["stdout"].splitlines()
    body, summary = lines[:-1], lines[-1]
    line_size = len(lines[0]) + 1  # every flood line has the same length
    assert len(body) == 1001  # 500 head + marker + 500 tail
    assert body[0].endswith(f"line 0000000 {'x' * 180}")
    assert body[499].endswith("line 0000499 " + "x" * 180)
    assert body[500] == f"[... 999000 lines ({999000 * line_size} bytes) omitted ...]"
    assert body[-1].endswith("line 0999999 " + "x" * 180)
    assert re.search(r" lines=1000 omitted_lines=999000 omitted_bytes=\d+$", summary)
    assert report["growth"] < 32 * 1024 * 1024, f"RSS grew by {report['growth'] / 2**20:.1f} MiB"
