"""Install phase: uv vs pip, cold vs already satisfied, and the per-request cost of the workspace.

Every figure comes from this one run on this machine. "Cold" is a fresh, empty
``install_target`` (uv's own cache stays warm across repetitions, as on a worker
that has served before); "satisfied" is the same request again, which starts no
process. Wheels are built locally and installed with ``--no-index --find-links``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.config import Installer
from otel_flash.runtime.workspace import Workspace, bind_workspace
from otel_flash.testing import capture_telemetry

REPEATS = 3
INSTALLERS: tuple[Installer, ...] = ("uv", "pip")
TRIVIAL_CALLS = 2_000
PACKAGES = ("benchdemo-core", "benchdemo-extra", "benchdemo-top")
CODE = "import benchdemo_top\n\ndef use():\n    return benchdemo_top.VERSION\n"


def _wheels(directory: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.wheels import build_wheel

    build_wheel(directory, "benchdemo-core", "1.0")
    build_wheel(directory, "benchdemo-extra", "1.0", requires=["benchdemo-core>=1"])
    build_wheel(directory, "benchdemo-top", "1.0", requires=["benchdemo-extra", "benchdemo-core"])


def _install_ms(installer: Installer, wheels: Path, target: Path) -> tuple[float, float]:
    """Milliseconds of the flash.dependencies.python phase: cold, then already satisfied."""
    telemetry = capture_telemetry()
    config = FlashConfig(
        installer=installer,
        install_target=str(target),
        install_options=("--no-index", "--find-links", str(wheels)),
    )
    request: dict[str, Any] = {
        "function_name": "use",
        "function_code": CODE,
        "dependencies": ["benchdemo-top==1.0"],
        "serialization_format": "json",
    }
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        for _ in range(2):
            response = executor.execute_sync(request)
            if not response.success:
                raise RuntimeError(response.error)
    sys.modules.pop("benchdemo_top", None)  # the next target holds a fresh copy
    spans = [s for s in telemetry.spans() if s.name == "flash.dependencies.python"]
    cold, satisfied = ((s.end_time or 0) - (s.start_time or 0) for s in spans)
    telemetry.shutdown()
    return cold / 1e6, satisfied / 1e6


def _workspace_us() -> float:
    """Per-request cost of the lazy workspace when nobody asks for it: create, bind, close."""
    started = time.perf_counter_ns()
    for _ in range(TRIVIAL_CALLS):
        workspace = Workspace(None)
        bind_workspace(workspace)
        workspace.close()
    return (time.perf_counter_ns() - started) / TRIVIAL_CALLS / 1000


def _trivial_us() -> float:
    telemetry = capture_telemetry()
    request = {
        "function_name": "f",
        "function_code": "def f():\n    return 1\n",
        "serialization_format": "json",
    }
    with RemoteExecutor(
        FlashConfig(), tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        executor.execute_sync(request)
        started = time.perf_counter_ns()
        for _ in range(TRIVIAL_CALLS):
            executor.execute_sync(request)
        elapsed = time.perf_counter_ns() - started
    telemetry.shutdown()
    return elapsed / TRIVIAL_CALLS / 1000


def main() -> None:
    """Print medians and the ratios between them."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        root = Path(tmp)
        _wheels(root / "wheels")
        figures: dict[str, list[float]] = {
            "uv cold": [],
            "uv satisfied": [],
            "pip cold": [],
            "pip satisfied": [],
        }
        for repeat in range(REPEATS):
            for installer in INSTALLERS:
                cold, satisfied = _install_ms(installer, root / "wheels", root / f"{installer}-{repeat}")
                figures[f"{installer} cold"].append(cold)
                figures[f"{installer} satisfied"].append(satisfied)
    median = {name: statistics.median(values) for name, values in figures.items()}
    print(f"install phase for {len(PACKAGES)} packages, median of {REPEATS}:")
    for name, value in median.items():
        print(f"  {name:<14} {value:9.2f} ms")
    print(f"  pip cold / uv cold:           {median['pip cold'] / median['uv cold']:6.1f}x")
    print(f"  uv cold / satisfied:          {median['uv cold'] / median['uv satisfied']:6.1f}x")
    print(f"  pip cold / satisfied:         {median['pip cold'] / median['pip satisfied']:6.1f}x")
    workspace, trivial = _workspace_us(), _trivial_us()
    print(f"lazy workspace per request: {workspace:.2f} us of a {trivial:.1f} us trivial request")
    print(f"  = {workspace / trivial:.1%} of the trivial request")


if __name__ == "__main__":
    main()
