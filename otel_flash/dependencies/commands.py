"""The installers' command lines: uv, pip and apt-get, each an argv list (never a shell)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PythonInstallerName = Literal["uv", "pip"]
APT_ENVIRONMENT = {"DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True, slots=True)
class PythonInstaller:
    """One way of installing Python packages.

    Attributes:
        name: ``uv`` or ``pip``, as recorded on the span.
        command: the argv prefix that starts it: ``(uv,)`` or ``(python, "-m", "pip")``.
    """

    name: PythonInstallerName
    command: tuple[str, ...]

    def argv(
        self, requirements: Sequence[str], *, python: str, target: str | None, options: Sequence[str] = ()
    ) -> list[str]:
        """The command installing ``requirements`` for ``python`` (or into ``target``).

        ``options`` are the operator's (``FlashConfig.install_options``), never a request's.
        """
        if self.name == "uv":
            where = ["--target", target] if target else []
            head = [*self.command, "pip", "install", "--python", python, "--no-progress", "--color", "never"]
            return [*head, *where, *options, *requirements]
        # pip --target ignores what the directory holds: --upgrade replaces older versions
        where = ["--target", target, "--upgrade"] if target else []
        head = [
            *self.command,
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ]
        return [*head, *where, *options, *requirements]


def find_uv(python: str) -> str | None:
    """The uv executable: next to ``python``, else on ``PATH``, else from the ``uv`` package."""
    sibling = Path(python).parent / "uv"
    if sibling.is_file():
        return str(sibling)
    found = shutil.which("uv")
    if found:
        return found
    if importlib.util.find_spec("uv") is not None:
        import uv

        try:
            return str(uv.find_uv_bin())
        except FileNotFoundError:
            return None
    return None


def choose_python_installer(
    configured: Literal["auto", "uv", "pip"], command: Sequence[str], python: str
) -> PythonInstaller:
    """The installer to use: ``command`` (if given) stands for uv, or for pip when pip is configured.

    ``auto`` means uv when it can be found, else pip.
    """
    if configured == "pip":
        return PythonInstaller("pip", tuple(command) or (python, "-m", "pip"))
    if command:
        return PythonInstaller("uv", tuple(command))
    uv = find_uv(python)
    if uv is not None:
        return PythonInstaller("uv", (uv,))
    if configured == "uv":
        return PythonInstaller("uv", ("uv",))  # fails to start, with a clear error
    return PythonInstaller("pip", (python, "-m", "pip"))


def apt_update_argv(apt_get: str) -> list[str]:
    """``apt-get update``, quiet enough for a log."""
    return [apt_get, "update", "-q"]


def apt_install_argv(apt_get: str, packages: Sequence[str]) -> list[str]:
    """``apt-get install`` of validated package names, without recommended extras."""
    return [apt_get, "install", "-y", "-q", "--no-install-recommends", *packages]


def apt_unavailable_reason(euid: int, apt_get: str | None) -> str | None:
    """Why apt cannot be used here, or None when it can (root, and apt-get present)."""
    if apt_get is None:
        return "apt-get was not found (system packages need a Debian-like system)"
    if euid != 0:
        return f"installing system packages needs root, and this process runs as uid {euid}"
    return None
