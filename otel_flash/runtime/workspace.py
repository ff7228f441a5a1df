"""The working directory of one execution, reachable from its code as :func:`current_workspace`.

In-process executions share the process's cwd, so changing it would disturb
concurrent executions; the function asks for its workspace instead. The
workspace travels in the OpenTelemetry context (under this module's own key),
so threads the function starts find it too.

A temporary workspace is created on first use and removed when its execution
ends; a persistent one (``FlashConfig.workspace_path``) is created if missing
and always kept.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from opentelemetry.context import Context, create_key, get_value, set_value

_KEY = create_key("flash.workspace")
_PREFIX = "flash-workspace-"


class Workspace:
    """One execution's working directory: persistent, or temporary and made on first use."""

    __slots__ = ("_closed", "_lock", "_path", "_ready", "persistent")

    def __init__(self, persistent_path: str | None = None) -> None:
        self.persistent = persistent_path is not None
        self._path = Path(persistent_path) if persistent_path is not None else None
        self._ready = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        """True once the directory has been made (or checked) for this execution."""
        return self._ready

    def path(self) -> Path:
        """The directory, made now if this is its first use.

        Raises:
            LookupError: a temporary workspace is asked for after its execution ended.
        """
        path = self._path
        if self._ready and path is not None:
            return path
        with self._lock:
            return self._prepare()

    def close(self) -> None:
        """Remove a temporary directory (if it was ever made); keep a persistent one."""
        with self._lock:
            self._closed = True
            if self.persistent or not self._ready or self._path is None:
                return
            self._ready = False
            shutil.rmtree(self._path, ignore_errors=True)

    def _prepare(self) -> Path:
        if self._ready and self._path is not None:  # another thread made it meanwhile
            return self._path
        if self._closed and not self.persistent:
            msg = "the execution that owned this temporary workspace has ended"
            raise LookupError(msg)
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix=_PREFIX))
        else:
            self._path.mkdir(parents=True, exist_ok=True)
        self._ready = True
        return self._path


def bind_workspace(workspace: Workspace, context: Context | None = None) -> Context:
    """A context in which :func:`current_workspace` answers ``workspace``."""
    return set_value(_KEY, workspace, context)


def current_workspace() -> Path:
    """The working directory of the execution this code runs in.

    A fresh temporary directory by default (made on the first call, removed when
    the execution ends), or the configured persistent workspace (kept). Works in
    threads the function starts, as they inherit the execution's context.

    Raises:
        LookupError: called outside an execution.
    """
    workspace = get_value(_KEY)
    if not isinstance(workspace, Workspace):
        msg = "current_workspace() is only available while an execution runs"
        raise LookupError(msg)
    return workspace.path()
