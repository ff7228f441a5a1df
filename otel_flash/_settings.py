"""Checking and parsing setting values: the one way to validate a choice, and the variable parsers.

Used by :class:`otel_flash.FlashConfig` and :class:`otel_flash.ExportSettings`; neither
reads the environment here: they hand over the mapping they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import unquote

from otel_flash.exceptions import ConfigError

__all__ = ["alternatives", "check_choice", "choice", "parse_bool", "parse_pairs", "parse_variable"]

_T = TypeVar("_T")
_S = TypeVar("_S", bound=str)


def alternatives(options: tuple[str, ...]) -> str:
    """The options as a message says them: ``'a', 'b' or 'c'``; a longer list as ``one of A, B, C, D``."""
    if len(options) > 3:
        return f"one of {', '.join(options)}"
    quoted = [repr(option) for option in options]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else quoted[0]


def check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    """Refuse a ``value`` of the field ``name`` that is not one of ``options``.

    Raises:
        ConfigError: naming the field, its options and the value.
    """
    if value not in options:
        msg = f"{name} must be {alternatives(options)}, got {value!r}"
        raise ConfigError(msg)


def choice(options: tuple[_S, ...]) -> Callable[[str], _S]:
    """A parser of a variable's value into one of ``options`` (any case)."""

    def parse(raw: str) -> _S:
        for option in options:
            if raw.lower() == option:
                return option
        msg = f"expected {alternatives(options)}"
        raise ValueError(msg)

    return parse


def parse_variable(env: Mapping[str, str], name: str, parse: Callable[[str], _T], default: _T) -> _T:
    """The variable ``name`` of ``env`` parsed, or ``default`` when it is not set (or ``name`` is empty).

    Raises:
        ConfigError: naming the variable and its value.
    """
    raw = env.get(name) if name else None
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        msg = f"{name}={raw!r} is invalid: {exc}"
        raise ConfigError(msg) from exc


def parse_bool(raw: str) -> bool:
    """``true``/``1``/``yes``/``on`` or ``false``/``0``/``no``/``off``, any case."""
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    msg = "expected true or false"
    raise ValueError(msg)


def parse_pairs(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` with percent-encoded values, as the OTLP headers variable."""
    result: dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"expected key=value, got {pair!r}"
            raise ValueError(msg)
        result[unquote(key.strip())] = unquote(value.strip())
    return result
