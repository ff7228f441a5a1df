"""The caller's side: build a :class:`FunctionRequest` from a Python function, continuing its trace.

Like runpod-flash, the function travels as source (``inspect.getsource``, decorators
removed) and each argument as ``base64(cloudpickle.dumps(value))``. The current
OpenTelemetry context goes into ``trace_context`` (W3C ``traceparent``,
``tracestate`` and ``baggage``), so the worker's ``flash.execute`` span becomes a
child of the caller's span::

    with tracer.start_as_current_span("ask-worker"):
        request = function_request(add, args=(1, 2))
    response = post(request.model_dump(exclude_none=True))
    print(result_of(response), response.trace_id)
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context

from otel_flash.exceptions import LoadError, SerializationError
from otel_flash.protocol import FunctionRequest, FunctionResponse
from otel_flash.runtime import decode_value, encode_value
from otel_flash.telemetry import inject_context

__all__ = ["function_request", "result_of", "source_of"]


def function_request(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    dependencies: Sequence[str] | None = None,
    system_dependencies: Sequence[str] | None = None,
    context: Context | None = None,
) -> FunctionRequest:
    """A request that runs ``fn(*args, **kwargs)`` on a worker.

    ``context`` is the OpenTelemetry context to continue (default: the current one).

    Raises:
        LoadError: the source of ``fn`` cannot be found (a lambda, a built-in, or
            code typed into a REPL).
        SerializationError: an argument cannot be pickled.
    """
    return FunctionRequest(
        function_name=fn.__name__,
        function_code=source_of(fn),
        args=[_encode(value, f"args[{i}]") for i, value in enumerate(args)],
        kwargs={key: _encode(value, f"kwargs[{key!r}]") for key, value in (kwargs or {}).items()},
        dependencies=list(dependencies) if dependencies else None,
        system_dependencies=list(system_dependencies) if system_dependencies else None,
        trace_context=inject_context(context) or None,
    )


def source_of(obj: Callable[..., Any] | type) -> str:
    """The dedented source of a function or class, without its decorators.

    Raises:
        LoadError: there is no source to send.
    """
    name = getattr(obj, "__name__", type(obj).__name__)
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as exc:
        msg = f"cannot send {name!r}: its source code is not available ({exc})"
        raise LoadError(msg) from exc
    if name == "<lambda>":
        msg = "cannot send a lambda: define the function with def"
        raise LoadError(msg)
    tree = ast.parse(source)
    definition = tree.body[0]
    if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        lines = source.splitlines(keepends=True)
        return "".join(lines[definition.lineno - 1 :])
    return source


def result_of(response: FunctionResponse) -> Any:
    """The decoded result of a successful response.

    Raises:
        RuntimeError: the execution failed; the message is the worker's error.
    """
    if not response.success:
        msg = f"remote execution failed: {response.error}"
        raise RuntimeError(msg)
    if response.result is not None:
        return decode_value(response.result, "result")
    return response.json_result


def _encode(value: Any, where: str) -> str:
    try:
        return encode_value(value)
    except SerializationError as exc:
        msg = f"{where}: {exc}"
        raise SerializationError(msg) from exc
