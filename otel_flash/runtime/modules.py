"""A request's ``modules``: the caller's own source files, importable for one execution.

runpod-flash (>= 1.19) sends ``modules: {relative_path: source}`` with the caller's
local, non-pip modules. :func:`validate_modules` checks the whole map before anything
is written; :class:`ModuleFiles` writes it into a directory of its own; and
:class:`ModuleImports` puts that directory on ``sys.path`` for the load and the call,
then takes it and the modules imported from it away again.

In thread mode every execution shares ``sys.path`` and ``sys.modules``, so a name
another running execution has claimed with different sources is refused with a clear
error; in process mode each child process has its own.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from otel_flash.capture import utf8_size
from otel_flash.exceptions import LoadError, RequestError
from otel_flash.semconv import MODULES_SETUP_SPAN

MODULES_PHASE = MODULES_SETUP_SPAN


def validate_modules(modules: Mapping[str, str], max_files: int, max_bytes: int) -> None:
    """Check every entry of a request's ``modules``; nothing is written.

    Raises:
        RequestError: naming the first bad entry (or the bound the map is over).
    """
    if len(modules) > max_files:
        msg = f"modules: {len(modules)} files is over the limit of {max_files}"
        raise RequestError(msg)
    total = 0
    for path, source in modules.items():
        problem = _path_problem(path)
        if problem is not None:
            msg = f"modules: entry {path!r} {problem}"
            raise RequestError(msg)
        total += utf8_size(source)
        if total > max_bytes:
            msg = f"modules: entry {path!r} takes the sources over the limit of {max_bytes} bytes"
            raise RequestError(msg)


def _path_problem(path: str) -> str | None:
    """Why ``path`` cannot be written as a module file, or None."""
    if not path or "\\" in path or "\0" in path or path.startswith("/"):
        return "is not a relative POSIX path"
    *packages, filename = path.split("/")
    if any(part in ("", ".", "..") for part in packages):
        return "has an empty, '.' or '..' part"
    if not filename.endswith(".py"):
        return "is not a .py file"
    names = [*packages, filename.removesuffix(".py")]
    if not all(name.isidentifier() for name in names):
        return "has a part that is not a Python identifier"
    return None


class ModuleFiles:
    """A request's module files, written into a fresh directory; :meth:`close` removes it.

    Args:
        modules: the validated map (see :func:`validate_modules`).
    """

    def __init__(self, modules: Mapping[str, str]) -> None:
        self.names = frozenset(path.split("/", 1)[0].removesuffix(".py") for path in modules)
        digest = hashlib.sha256()
        for path in sorted(modules):
            digest.update(f"{path}\0{modules[path]}\0".encode("utf-8", "surrogatepass"))
        self.digest = digest.hexdigest()
        self.path = Path(tempfile.mkdtemp(prefix="flash-modules-"))
        try:
            for relative, source in modules.items():
                target = self.path / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(source, encoding="utf-8", errors="surrogatepass")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the directory; idempotent."""
        shutil.rmtree(self.path, ignore_errors=True)


class ModuleImports:
    """Which sources own each top-level module name in this process, while executions use them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, tuple[str, int]] = {}

    def active(self, files: ModuleFiles | None) -> AbstractContextManager[None]:
        """``files`` importable inside the block; afterwards off ``sys.path`` and out of ``sys.modules``.

        Without files, a block that does nothing (the common case, on every request's path).

        Raises:
            LoadError: on entering, a name is held by another execution with different
                sources, or names a module the worker itself has imported.
        """
        return _NO_FILES if files is None else _Activation(self, files)

    def claim(self, files: ModuleFiles) -> None:
        """Claim the names of ``files`` for one execution (see :meth:`active`)."""
        with self._lock:
            for name in sorted(files.names):
                owner = self._owners.get(name)
                if owner is not None and owner[0] != files.digest:
                    msg = (
                        f"modules: {name!r} is in use by a concurrent execution with other sources;"
                        " retry, or use isolation 'process'"
                    )
                    raise LoadError(msg)
                if owner is None:
                    refuse_shadowing(name)
            for name in files.names:
                digest, count = self._owners.get(name, (files.digest, 0))
                self._owners[name] = (digest, count + 1)

    def release(self, files: ModuleFiles) -> None:
        """Give back what :meth:`claim` took; a name no execution holds any more is forgotten."""
        with self._lock:
            for name in files.names:
                digest, count = self._owners.pop(name)
                if count > 1:
                    self._owners[name] = (digest, count - 1)
                else:
                    forget_modules(name)


class _Activation:
    """One execution's module files on ``sys.path`` (see :meth:`ModuleImports.active`)."""

    __slots__ = ("_entry", "_files", "_imports")

    def __init__(self, imports: ModuleImports, files: ModuleFiles) -> None:
        self._imports = imports
        self._files = files
        self._entry = str(files.path)

    def __enter__(self) -> None:
        self._imports.claim(self._files)
        sys.path.insert(0, self._entry)
        importlib.invalidate_caches()

    def __exit__(self, *exc_info: object) -> None:
        if self._entry in sys.path:
            sys.path.remove(self._entry)
        sys.path_importer_cache.pop(self._entry, None)
        self._imports.release(self._files)


_NO_FILES: AbstractContextManager[None] = nullcontext()


def refuse_shadowing(name: str) -> None:
    """Raise when ``name`` is a module the process already imported (a request cannot replace it)."""
    if name in sys.modules:
        msg = f"modules: {name!r} names a module the worker has already imported; rename it"
        raise LoadError(msg)


def module_names(directory: str) -> list[str]:
    """The top-level module names a :class:`ModuleFiles` directory holds."""
    return sorted(entry.name.removesuffix(".py") for entry in Path(directory).iterdir())


def forget_modules(name: str) -> None:
    """Drop ``name`` and its submodules from ``sys.modules``."""
    prefix = f"{name}."
    for loaded in [key for key in sys.modules if key == name or key.startswith(prefix)]:
        sys.modules.pop(loaded, None)
