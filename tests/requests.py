"""Request builders for the tests."""

from __future__ import annotations

import base64
import textwrap
from typing import Any

import cloudpickle

# A function that logs one line, prints one and returns: the worker entry points' smoke request.
HELLO = """
import logging

def hello(name):
    logging.getLogger("hello").info("greeting %s", name)
    print(f"Hello, {name}!")
    return f"Hello, {name}!"
"""


def function_request(code: str, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A JSON-format function request for ``name`` defined in ``code`` (dedented)."""
    return {
        "function_name": name,
        "function_code": textwrap.dedent(code),
        "args": list(args),
        "kwargs": kwargs,
        "serialization_format": "json",
    }


def pickled(value: Any) -> str:
    """``base64(cloudpickle.dumps(value))``, as runpod-flash encodes arguments."""
    return base64.b64encode(cloudpickle.dumps(value)).decode("ascii")


def unpickled(data: str) -> Any:
    """Inverse of :func:`pickled`."""
    return cloudpickle.loads(base64.b64decode(data))


def stdout_lines(stdout: str | None) -> list[str]:
    """The lines of a response's stdout without the closing REPORT line."""
    lines = (stdout or "").splitlines()
    assert lines and lines[-1].startswith("REPORT "), lines
    return lines[:-1]
