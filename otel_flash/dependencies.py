"""Installing a request's dependencies: system packages with apt, then Python packages.

Every entry is validated before any process starts (:mod:`otel_flash.requirements`).
What is already installed at a matching version is skipped without starting a
process. Installers run as argv lists (:mod:`otel_flash.installers`), their
output streamed line by line into the execution's log (:mod:`otel_flash.installer_output`),
under a time limit that kills their whole process group. One lock per target
environment keeps two requests from running installers into it at once.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry import trace
from packaging.requirements import Requirement

from otel_flash.config import FlashConfig, is_secret_name
from otel_flash.exceptions import DependencyError
from otel_flash.installer_output import ProcessOutcome, run_streamed
from otel_flash.installers import (
    APT_ENVIRONMENT,
    PythonInstaller,
    apt_install_argv,
    apt_unavailable_reason,
    apt_update_argv,
    choose_python_installer,
)
from otel_flash.redaction import redact_all
from otel_flash.requirements import check_system_packages, parse_requirements, unsatisfied

_log = logging.getLogger("flash.dependencies")
_DPKG_STATUS = "/var/lib/dpkg/status"
_LOCK_FILE = ".otel-flash-install.lock"

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}
_path_holders: dict[str, int] = {}
_path_inserted: set[str] = set()
_apt_updated = False  # one ``apt-get update`` per process lifetime


class DependencyInstaller:
    """Installs requirements with the configured installer, streaming its output as log lines.

    With ``config.install_target`` set, Python packages go into that directory,
    which is put at the front of ``sys.path`` while this installer is open (so
    they win over the interpreter's own); otherwise into the running interpreter.
    Call :meth:`close` when done.
    """

    def __init__(self, config: FlashConfig, *, apt_get: str = "apt-get") -> None:
        self._config = config
        self._python = sys.executable
        self._target = str(Path(config.install_target).resolve()) if config.install_target else None
        self._apt_get = apt_get
        self._installer: PythonInstaller | None = None
        self._closed = False
        if self._target is not None:
            _hold_import_path(self._target)

    @property
    def environment(self) -> str:
        """What installs go into: the target directory, or the interpreter's path."""
        return self._target or self._python

    def close(self) -> None:
        """Take the install target off ``sys.path`` (when no other installer holds it); idempotent."""
        if not self._closed and self._target is not None:
            _release_import_path(self._target)
        self._closed = True

    def install_python(self, requirements: Sequence[str], *, cwd: str | None = None) -> None:
        """Install ``requirements`` (PEP 508 strings) unless all are already satisfied.

        Sets the ``flash.dependencies.*`` attributes on the current span.

        Raises:
            DependencyError: an entry is refused, or the installer failed or timed out.
        """
        parsed = parse_requirements(requirements)
        shown = redact_all(list(requirements))
        installer = self._python_installer()
        span = trace.get_current_span()
        span.set_attributes(
            {"flash.dependencies.installer": installer.name, "flash.dependencies.requirements": shown}
        )
        if not self._missing(parsed):
            return _skipped(span, "Python", shown)
        lock_file = os.path.join(self._target, _LOCK_FILE) if self._target else None
        with _exclusive(self.environment, lock_file):
            missing = self._missing(parsed)  # another request may have installed them meanwhile
            if not missing:
                return _skipped(span, "Python", shown)
            argv = installer.argv(
                [str(r) for r in parsed],
                python=self._python,
                target=self._target,
                options=self._config.install_options,
            )
            _log.info("installing %s with %s", ", ".join(shown), installer.name)
            outcome = self._run(argv, cwd, None, span)
        importlib.invalidate_caches()
        _raise_on_failure(outcome, installer.name, redact_all([str(r) for r in missing]), self._timeout)

    def install_system(self, packages: Sequence[str], *, cwd: str | None = None) -> None:
        """Install Debian ``packages`` with apt-get unless all are already installed.

        Raises:
            DependencyError: a name is refused, apt cannot be used here (not root, no
                apt-get), or the installation failed or timed out.
        """
        checked = check_system_packages(packages)
        span = trace.get_current_span()
        span.set_attributes(
            {"flash.dependencies.installer": "apt-get", "flash.dependencies.requirements": checked}
        )
        apt_get = shutil.which(self._apt_get)
        reason = apt_unavailable_reason(os.geteuid(), apt_get)
        if reason is not None or apt_get is None:
            msg = f"cannot install system packages {', '.join(checked)}: {reason}"
            raise DependencyError(msg)
        with _exclusive("apt", None):
            missing = _dpkg_missing(checked)
            if not missing:
                return _skipped(span, "system", checked)
            self._apt_update_once(apt_get, cwd)
            _log.info("installing %s with apt-get", ", ".join(missing))
            outcome = self._run(apt_install_argv(apt_get, missing), cwd, APT_ENVIRONMENT, span)
        _raise_on_failure(outcome, "apt-get", missing, self._timeout)

    @property
    def _timeout(self) -> float:
        return self._config.install_timeout_s

    def _python_installer(self) -> PythonInstaller:
        if self._installer is None:
            cfg = self._config
            self._installer = choose_python_installer(cfg.installer, cfg.installer_command, self._python)
        return self._installer

    def _missing(self, parsed: list[Requirement]) -> list[Requirement]:
        return unsatisfied(parsed, [self._target] if self._target else None)

    def _apt_update_once(self, apt_get: str, cwd: str | None) -> None:
        global _apt_updated  # guarded by the "apt" lock held by the caller
        if _apt_updated:
            return
        _log.info("updating the apt package lists (once per process)")
        outcome = self._run(apt_update_argv(apt_get), cwd, APT_ENVIRONMENT, None)
        if outcome.exit_code == 0 and not outcome.timed_out:
            _apt_updated = True
        else:
            _log.warning("apt-get update failed (exit code %s); trying the install anyway", outcome.exit_code)

    def _inherited_environment(self) -> dict[str, str]:
        """The worker's environment, less its secrets unless the config passes them on."""
        if self._config.installers_get_secrets:
            return dict(os.environ)
        patterns = self._config.secret_env_patterns
        return {name: value for name, value in os.environ.items() if not is_secret_name(name, patterns)}

    def _run(
        self, argv: list[str], cwd: str | None, extra_env: dict[str, str] | None, span: trace.Span | None
    ) -> ProcessOutcome:
        env = {**self._inherited_environment(), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        try:
            outcome = run_streamed(argv, timeout_s=self._timeout, logger=_log, cwd=cwd, env=env)
        except OSError as exc:
            msg = f"cannot start the installer {argv[0]!r}: {exc}"
            raise DependencyError(msg) from exc
        if span is not None:
            span.set_attribute("flash.dependencies.exit_code", outcome.exit_code)
        return outcome


def _skipped(span: trace.Span, kind: str, shown: Sequence[str]) -> None:
    span.set_attribute("flash.dependencies.skipped", True)
    _log.info("%s dependencies already satisfied: %s", kind, ", ".join(shown))


def _raise_on_failure(outcome: ProcessOutcome, installer: str, names: Sequence[str], timeout: float) -> None:
    if outcome.timed_out:
        msg = (
            f"installing {', '.join(names)} with {installer} timed out after {timeout:g} s;"
            f" its process group was killed (exit code {outcome.exit_code})"
        )
    elif outcome.exit_code != 0:
        msg = f"installing {', '.join(names)} with {installer} failed: exit code {outcome.exit_code}"
    else:
        return
    last = [line for line in outcome.tail if line.strip()][-5:]
    if last:
        msg += "\n" + "\n".join(f"  {line}" for line in last)
    raise DependencyError(msg)


@contextmanager
def _exclusive(key: str, lock_file: str | None) -> Iterator[None]:
    """One installer per environment: a lock per process, and a file lock across processes."""
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if lock_file is None:
            yield
            return
        Path(lock_file).parent.mkdir(parents=True, exist_ok=True)
        with open(lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _hold_import_path(path: str) -> None:
    with _locks_guard:
        _path_holders[path] = _path_holders.get(path, 0) + 1
        if path not in sys.path:
            sys.path.insert(0, path)
            _path_inserted.add(path)
    importlib.invalidate_caches()


def _release_import_path(path: str) -> None:
    with _locks_guard:
        _path_holders[path] -= 1
        if _path_holders[path] == 0:
            del _path_holders[path]
            if path in _path_inserted and path in sys.path:
                sys.path.remove(path)
            _path_inserted.discard(path)


def _dpkg_missing(packages: Sequence[str], status_file: str = _DPKG_STATUS) -> list[str]:
    """The ``name[:arch][=version]`` entries dpkg does not list as installed."""
    try:
        text = Path(status_file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return list(packages)
    installed: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if "Package" in fields and fields.get("Status", "").endswith(" installed"):
            installed[fields["Package"]] = fields.get("Version", "")
    missing = []
    for package in packages:
        name, _, version = package.partition("=")
        found = installed.get(name.partition(":")[0])
        if found is None or (version and found != version):
            missing.append(package)
    return missing
