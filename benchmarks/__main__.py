"""``python -m benchmarks`` (``make bench``): run every benchmark module in turn."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from importlib import metadata

import benchmarks


def describe_machine() -> str:
    """One line naming the machine and the versions the figures were taken on."""
    import os

    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("opentelemetry-sdk", "opentelemetry-instrumentation-logging")
    )
    return f"{platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}, {versions}"


def main(argv: list[str]) -> int:
    """Run the modules named in ``argv`` (default: all ``bench_*``)."""
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    print(describe_machine())
    for name in names:
        module = importlib.import_module(f"benchmarks.{name.removeprefix('benchmarks.')}")
        started = time.perf_counter()
        print(f"\n## {module.__name__}: {(module.__doc__ or '').strip().splitlines()[0]}")
        module.main()
        print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
