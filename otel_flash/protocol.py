"""The wire protocol: ``FunctionRequest`` in, ``FunctionResponse`` out.

Field for field compatible with RunPod's runpod-flash client: a request that
client sends (``model_dump(exclude_none=True)``, optionally wrapped as
``{"input": {...}}``) is accepted as is. ``trace_context``, ``timeout_s`` and
``trace_id`` are our additions; old clients ignore them.

Two levels of "invalid": a body runpod-flash's own model accepts but we cannot run
(an unknown ``execution_type``, say) is *model-valid* and gets a ``success: false``
answer; :func:`reference_accepts` tells it from a body that is not a request at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from otel_flash.exceptions import RequestError

__all__ = [
    "ExecutionType",
    "FunctionRequest",
    "FunctionResponse",
    "SerializationFormat",
    "describe_validation_error",
    "parse_request",
    "reference_accepts",
    "unwrap_envelope",
]

_log = logging.getLogger("flash.protocol")
ExecutionType = Literal["function", "class"]
SerializationFormat = Literal["cloudpickle", "json"]


class FunctionRequest(BaseModel):
    """One remote call: code, arguments and what it needs installed.

    With ``serialization_format="cloudpickle"`` (the default) every entry of
    ``args``, ``kwargs``, ``constructor_args`` and ``constructor_kwargs`` is
    ``base64(cloudpickle.dumps(value))``; with ``"json"`` they are plain JSON values.
    """

    model_config = ConfigDict(extra="ignore")

    function_name: str | None = None
    function_code: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[str] | None = None
    system_dependencies: list[str] | None = None
    modules: dict[str, str] = Field(default_factory=dict)
    execution_type: ExecutionType = "function"
    class_name: str | None = None
    class_code: str | None = None
    constructor_args: list[Any] | None = None
    constructor_kwargs: dict[str, Any] | None = None
    method_name: str = "__call__"
    instance_id: str | None = None
    create_new_instance: bool = True
    accelerate_downloads: bool = True
    serialization_format: SerializationFormat = "cloudpickle"
    trace_context: dict[str, str] | None = None
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("trace_context", mode="before")
    @classmethod
    def _lenient_carrier(cls, value: Any) -> dict[str, str] | None:
        """A malformed carrier must never fail the call: its bad parts are dropped with a warning."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            _log.warning("ignoring trace_context: expected an object, got %s", type(value).__name__)
            return None
        dropped = sorted(str(key) for key, item in value.items() if not isinstance(item, str))
        if dropped:
            _log.warning("ignoring trace_context entries that are not strings: %s", ", ".join(dropped))
        return {str(key): item for key, item in value.items() if isinstance(item, str)}

    @model_validator(mode="after")
    def _check_target(self) -> FunctionRequest:
        """A name is required; code is not (without it the target is deployed: see runtime/targets.py)."""
        if self.execution_type == "function":
            _require(self.function_name, "function_name", "execution_type 'function'")
        else:
            _require(self.class_name, "class_name", "execution_type 'class'")
        return self

    @property
    def deployed(self) -> bool:
        """True when the request names its target without sending its code."""
        code = self.function_code if self.execution_type == "function" else self.class_code
        return code is None


class _ReferenceRequest(FunctionRequest):
    """What runpod-flash's own ``FunctionRequest`` accepts: any string for the two options."""

    execution_type: str = "function"  # type: ignore[assignment]  # wider than ours on purpose
    serialization_format: str = "cloudpickle"  # type: ignore[assignment]  # wider than ours on purpose

    @model_validator(mode="after")
    def _check_target(self) -> _ReferenceRequest:
        if self.execution_type == "function" and self.function_name is None:
            raise ValueError("function_name is required when execution_type is 'function'")
        if self.execution_type == "class" and self.class_name is None:
            raise ValueError("class_name is required when execution_type is 'class'")
        return self


class FunctionResponse(BaseModel):
    """The answer to one request.

    ``stdout`` holds every captured line of that one execution, bounded, ending
    with a ``REPORT`` summary line. ``result`` carries a cloudpickle result
    (base64), ``json_result`` a JSON one. ``trace_id`` names the execution's trace.
    """

    model_config = ConfigDict(extra="ignore")

    success: bool
    result: str | None = None
    json_result: Any = None
    error: str | None = None
    stdout: str | None = None
    instance_id: str | None = None
    instance_info: dict[str, Any] | None = None
    trace_id: str | None = None


def _require(value: str | None, name: str, context: str) -> None:
    if value is None or not value.strip():
        msg = f"'{name}' is required for {context}"
        raise ValueError(msg)


def parse_request(payload: FunctionRequest | Mapping[str, Any]) -> FunctionRequest:
    """Validate a request given as a model, a plain dict, or RunPod's ``{"input": {...}}``.

    Raises:
        RequestError: the payload is not a valid request; the message names each bad field.
    """
    if isinstance(payload, FunctionRequest):
        return payload
    if not isinstance(payload, Mapping):
        msg = f"request must be a JSON object, got {type(payload).__name__}"
        raise RequestError(msg)
    body = unwrap_envelope(payload)
    try:
        return FunctionRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc)) from exc


def reference_accepts(payload: Mapping[str, Any]) -> bool:
    """True when runpod-flash's own model accepts ``payload`` (its envelope unwrapped).

    Such a request gets a ``success: false`` answer even when we cannot run it; only
    a body for which this is False is "not a request at all" (HTTP 422).
    """
    try:
        _ReferenceRequest.model_validate(unwrap_envelope(payload))
    except ValidationError:
        return False
    return True


def unwrap_envelope(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the request inside RunPod's ``{"input": {...}}`` envelope, or the payload itself."""
    inner = payload.get("input")
    if isinstance(inner, Mapping) and not ({"function_name", "class_name"} & payload.keys()):
        return inner
    return payload


def describe_validation_error(exc: ValidationError) -> str:
    """One readable sentence per problem, each naming its field."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "request"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if error["loc"] else message)
    return "invalid request: " + "; ".join(problems)
