"""Arguments in, results out: cloudpickle (base64) or plain JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import cloudpickle

from otel_flash.exceptions import SerializationError
from otel_flash.protocol import SerializationFormat


def encode_value(value: Any) -> str:
    """``base64(cloudpickle.dumps(value))``, as runpod-flash sends arguments."""
    try:
        payload: bytes = cloudpickle.dumps(value)
    except (Exception, RecursionError) as exc:
        msg = f"result of type {type(value).__name__} cannot be pickled: {exc}"
        raise SerializationError(msg) from exc
    return base64.b64encode(payload).decode("ascii")


def decode_value(data: Any, where: str) -> Any:
    """Inverse of :func:`encode_value`; ``where`` names the argument in errors."""
    if not isinstance(data, str):
        msg = f"{where}: expected a base64 cloudpickle string, got {type(data).__name__}"
        raise SerializationError(msg)
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        msg = f"{where}: not valid base64 ({exc})"
        raise SerializationError(msg) from exc
    try:
        return cloudpickle.loads(raw)
    except Exception as exc:
        msg = f"{where}: cannot be unpickled: {type(exc).__name__}: {exc}"
        raise SerializationError(msg) from exc


def decode_arguments(
    args: list[Any] | None, kwargs: dict[str, Any] | None, fmt: SerializationFormat, prefix: str = ""
) -> tuple[list[Any], dict[str, Any]]:
    """Decode positional and keyword arguments of one call."""
    args = args or []
    kwargs = kwargs or {}
    if fmt == "json":
        return list(args), dict(kwargs)
    decoded_args = [decode_value(value, f"{prefix}args[{i}]") for i, value in enumerate(args)]
    decoded_kwargs = {key: decode_value(value, f"{prefix}kwargs[{key!r}]") for key, value in kwargs.items()}
    return decoded_args, decoded_kwargs


def encode_result(value: Any, fmt: SerializationFormat) -> dict[str, Any]:
    """The response fields carrying ``value``: ``result`` or ``json_result``."""
    if fmt == "cloudpickle":
        return {"result": encode_value(value)}
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        msg = f"result of type {type(value).__name__} is not JSON-encodable: {exc}"
        raise SerializationError(msg) from exc
    return {"json_result": value}


def json_bytes(value: Any, *, indent: int | None = None) -> bytes:
    """``value`` as UTF-8 JSON, whatever its strings hold (see :func:`valid_unicode`)."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return valid_unicode(text).encode()


def valid_unicode(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so it can be encoded as UTF-8.

    Lone surrogates come from undecodable bytes (a non-UTF-8 file name from ``os.listdir``).
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
