"""What a request calls: a function from its code, or a method of a (kept) class instance."""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otel_flash.exceptions import LoadError, RequestError
from otel_flash.instances import Instance, InstanceRegistry
from otel_flash.loader import CodeCache, load_namespace, resolve, resolve_method
from otel_flash.protocol import FunctionRequest
from otel_flash.serialization import decode_arguments


@dataclass(frozen=True, slots=True)
class Target:
    """What the load phase resolved: the callable and its decoded arguments."""

    fn: Callable[..., Any]
    args: list[Any]
    kwargs: dict[str, Any]
    qualname: str
    instance: Instance | None


class TargetLoader:
    """Compiles request code (cached), resolves the callable, decodes the arguments.

    Runs user code (module bodies, constructors, unpickling): the executor calls
    :meth:`load` inside the ``flash.function.load`` phase and its time limit.
    """

    def __init__(self, code: CodeCache, instances: InstanceRegistry) -> None:
        self._code = code
        self._instances = instances

    def load(self, request: FunctionRequest) -> Target:
        """The target of ``request``, or a LoadError / SerializationError / the user's error."""
        fmt = request.serialization_format
        if request.execution_type == "class":
            instance = self._instance_for(request)
            method = resolve_method(instance.obj, request.method_name)
            args, kwargs = decode_arguments(request.args, request.kwargs, fmt)
            return Target(method, args, kwargs, f"{request.class_name}.{request.method_name}", instance)
        name = request.function_name or ""
        namespace = load_namespace(self._code.compile(request.function_code or "", name))
        function = resolve(namespace, name, "function")
        if not callable(function):
            msg = f"{name!r} is not callable (it is a {type(function).__name__})"
            raise LoadError(msg)
        args, kwargs = decode_arguments(request.args, request.kwargs, fmt)
        return Target(function, args, kwargs, name, None)

    def _instance_for(self, request: FunctionRequest) -> Instance:
        class_name = request.class_name or ""
        if request.instance_id and not request.create_new_instance:
            existing = self._instances.get(request.instance_id)
            if existing is not None:
                if existing.class_name != class_name:
                    msg = f"instance {request.instance_id!r} is a {existing.class_name}, not a {class_name}"
                    raise RequestError(msg)
                return existing
        namespace = load_namespace(self._code.compile(request.class_code or "", class_name))
        cls = resolve(namespace, class_name, "class")
        args, kwargs = decode_arguments(
            request.constructor_args, request.constructor_kwargs, request.serialization_format, "constructor_"
        )
        return self._instances.add(class_name, cls(*args, **kwargs), request.instance_id)


def with_deployed_code(request: FunctionRequest, functions_module: str | None) -> FunctionRequest:
    """A deployed request (a name without code) as one importing its target from ``functions_module``.

    runpod-flash sends no code for a function deployed with the worker. The generated
    code is one ``from MODULE import NAME``, so both isolation modes load it as any code.

    Raises:
        RequestError: no module is configured, or the name is not a Python identifier.
    """
    if not request.deployed:
        return request
    kind = request.execution_type
    field = f"{kind}_code"
    name = (request.function_name if kind == "function" else request.class_name) or ""
    if functions_module is None:
        msg = (
            f"'{field}' is required for execution_type '{kind}'"
            f" (this worker has no FLASH_FUNCTIONS_MODULE to find deployed {kind}s in)"
        )
        raise RequestError(msg)
    if not name.isidentifier() or keyword.iskeyword(name):
        msg = f"{kind}_name {name!r} is not a Python identifier"
        raise RequestError(msg)
    return request.model_copy(update={field: f"from {functions_module} import {name}\n"})
