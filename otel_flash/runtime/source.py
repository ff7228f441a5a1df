"""Turn request source code into a callable, in a fresh module namespace per request."""

from __future__ import annotations

import builtins
import hashlib
import linecache
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from otel_flash.exceptions import LoadError

_MODULE_NAME = "__flash_remote__"


class CodeCache:
    """Compiled code objects by source text, least recently used evicted.

    Compiling is the costly part of loading; executing the code object into a
    new namespace each time keeps requests isolated from one another.
    """

    def __init__(self, maxsize: int = 128) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[str, types.CodeType] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, source: str, name: str) -> types.CodeType:
        """Return the code object for ``source``, compiling it on first use.

        The source is registered with :mod:`linecache` so tracebacks show its lines.
        """
        with self._lock:
            code = self._entries.get(source)
            if code is not None:
                self._entries.move_to_end(source)
                return code
        digest = hashlib.sha1(source.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()[:8]
        filename = f"<flash:{name}:{digest}>"
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as exc:
            msg = f"code does not compile: {exc.msg} (line {exc.lineno})"
            raise LoadError(msg) from exc
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        with self._lock:
            self._entries[source] = code
            if len(self._entries) > self._maxsize:
                evicted = self._entries.popitem(last=False)[1]
                linecache.cache.pop(evicted.co_filename, None)
        return code


def is_user_filename(filename: str) -> bool:
    """True for the file names :meth:`CodeCache.compile` gives submitted code."""
    return filename.startswith("<flash:")


def load_namespace(code: types.CodeType) -> dict[str, Any]:
    """Execute ``code`` in a fresh module namespace and return it.

    Errors raised by the module body propagate unchanged: they are the user's.
    """
    namespace: dict[str, Any] = {"__name__": _MODULE_NAME, "__builtins__": builtins}
    exec(code, namespace)
    return namespace


def resolve(namespace: dict[str, Any], name: str, kind: str) -> Any:
    """Look up ``name`` in ``namespace``, with an error that says what was there instead."""
    if name in namespace:
        return namespace[name]
    defined = sorted(
        key for key, value in namespace.items() if not key.startswith("__") and _is_user_object(value)
    )
    listing = ", ".join(defined) if defined else "nothing"
    msg = f"{kind} {name!r} not found in the submitted code (it defines: {listing})"
    raise LoadError(msg)


def resolve_method(instance: Any, method_name: str) -> Callable[..., Any]:
    """The bound method ``method_name`` of ``instance``, or a LoadError."""
    method = getattr(instance, method_name, None)
    if method is None or not callable(method):
        msg = f"method {method_name!r} not found on {type(instance).__name__}"
        raise LoadError(msg)
    return method  # type: ignore[no-any-return]  # getattr on a user object is Any


def _is_user_object(value: Any) -> bool:
    return callable(value) and getattr(value, "__module__", None) == _MODULE_NAME
