"""The ``make run`` demo: every example request end to end, on embedded defaults, no collector."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.cli import format_pretty
from otel_flash.testing import TelemetryCapture, capture_telemetry, format_span_tree

HERE = Path(__file__).parent
ISOLATION_CODE = """
import logging

def tagged(tag):
    for i in range(50):
        logging.getLogger("demo").info("%s line %d", tag, i)
        print(f"{tag} print {i}")
    return tag
"""


def main() -> int:
    """Run the examples, then 16 concurrent executions, and print what each one saw."""
    telemetry = capture_telemetry()
    config = FlashConfig.from_env()
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        for name in ("hello", "async_sleep", "counter_class", "counter_class", "failing"):
            telemetry.clear()
            response = executor.execute_sync(json.loads((HERE / f"{name}.json").read_text()))
            print(f"\n==== examples/{name}.json ====")
            print(format_pretty(response, _tree(telemetry)))
        print("\n==== 16 concurrent executions, 100 lines each ====")
        request = {"function_name": "tagged", "function_code": ISOLATION_CODE, "serialization_format": "json"}
        with ThreadPoolExecutor(16) as pool:
            responses = list(
                pool.map(lambda i: executor.execute_sync({**request, "args": [f"req{i}"]}), range(16))
            )
    crossed = sum(
        1
        for i, response in enumerate(responses)
        for line in (response.stdout or "").splitlines()[:-1]
        if f"req{i} " not in line
    )
    print(f"{len(responses)} responses, {crossed} lines in the wrong response")
    return 0 if crossed == 0 else 1


def _tree(telemetry: TelemetryCapture) -> str:
    return format_span_tree(telemetry.span_tree())


if __name__ == "__main__":
    sys.exit(main())
