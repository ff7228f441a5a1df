"""Installing a request's Python and system dependencies (first version: pip, validated)."""

from __future__ import annotations

import logging
import subprocess
import sys

from packaging.requirements import InvalidRequirement, Requirement

from otel_flash.config import FlashConfig
from otel_flash.exceptions import DependencyError

_log = logging.getLogger("flash.dependencies")


class DependencyInstaller:
    """Installs requirements with the configured installer, streaming its output as log lines."""

    def __init__(self, config: FlashConfig) -> None:
        self._config = config

    def install_python(self, requirements: list[str]) -> None:
        """Install ``requirements`` (PEP 508 strings) into the running interpreter."""
        for entry in requirements:
            try:
                Requirement(entry)
            except InvalidRequirement as exc:
                msg = f"refused dependency {entry!r}: not a PEP 508 requirement ({exc})"
                raise DependencyError(msg) from exc
        argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *requirements]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None  # PIPE was requested
        for line in process.stdout:
            _log.info("%s", line.rstrip("\n"))
        code = process.wait()
        if code != 0:
            msg = f"installing {', '.join(requirements)} failed: pip exited with {code}"
            raise DependencyError(msg)

    def install_system(self, packages: list[str]) -> None:
        """System packages need the apt installer of a later version."""
        msg = f"system dependencies are not supported yet: {', '.join(packages)}"
        raise DependencyError(msg)
