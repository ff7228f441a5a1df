"""The public API surface."""

from __future__ import annotations

import otel_flash


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and every name in it exists."""
    assert otel_flash.__all__ == sorted(otel_flash.__all__)
    for name in otel_flash.__all__:
        assert hasattr(otel_flash, name), name


def test_import_mutates_no_logging_state() -> None:
    """Importing the package added no handler to the root logger (executors do that)."""
    import subprocess
    import sys

    code = (
        "import logging, sys; before = list(logging.getLogger().handlers); out = sys.stdout;"
        "import otel_flash, otel_flash.testing, otel_flash.cli;"
        "assert logging.getLogger().handlers == before and sys.stdout is out; print('clean')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "clean"
