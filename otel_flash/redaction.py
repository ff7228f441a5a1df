"""Hiding secrets in text: URL credentials, secret query parameters, ``Authorization`` values.

Requirement strings, installer output, log lines, error messages and span attributes
can carry a private index's credentials or a user's tokens. Everything otel_flash
shows or exports passes through a :class:`Redactor` (:func:`redact_urls` for URL
credentials alone).

Every pattern runs in time linear in its input, whatever the input: each one starts
only where its anchor begins (a scheme only where a run of scheme characters starts,
a parameter only at ``?``, ``&`` or ``;``) and never backtracks over what it consumed
(possessive quantifiers), so a megabyte of ``a.a.a...@`` costs milliseconds, not
minutes. ``benchmarks/bench_redaction.py`` prints the scaling figure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "Redactor", "redact_all", "redact_parameters", "redact_urls"]

REDACTED = "***"
_MAX_DEPTH = 16  # nested attribute values deeper than this are left as they are
_PLAIN = frozenset({bool, int, float, type(None)})  # nothing to redact: returned at once

# scheme://userinfo@ where userinfo has no '/', '@' or whitespace: the whole userinfo
# goes, because a token is often written as the user name alone. The lookbehind makes
# a scheme start only where a run of scheme characters starts (linear, see above).
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*+://)(?P<userinfo>[^/@\s]++)@")

# "Authorization: Bearer abc", "authorization=Basic abc", "'Authorization': 'token abc'"; a value
# never swallows a following key ("Authorization: Authorization: Bearer abc" hides abc)
_AUTHORIZATION = re.compile(
    r"(?P<key>(?:proxy-)?authorization['\"]?\s*+[:=]\s*+['\"]?)(?!(?:proxy-)?authorization)"
    r"(?P<value>(?:[A-Za-z]++\s++(?!(?:proxy-)?authorization))?[^\s'\",}]++)",
    re.IGNORECASE,
)

# a query parameter's name, then (looked at separately) its value
_PARAMETER = re.compile(r"[?&;](?P<name>[^=&#?;\s]{1,64}+)=")
_PARAMETER_VALUE = re.compile(r"[^&#;\s'\"<>]++")
_SECRET_PARAMETERS = frozenset(
    {"sig", "key", "pwd", "auth", "code", "x-amz-credential", "x-goog-credential", "sas", "private"}
)
_SECRET_PARAMETER_ENDINGS = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "accesskey",
    "signature",
    "credential",
    "credentials",
    "_key",
    "-key",
)


def redact_urls(text: str) -> str:
    """``text`` with the user information of every URL replaced by ``***``.

    Example: ``pkg @ https://me:s3cret@host/pkg.whl`` -> ``pkg @ https://***@host/pkg.whl``.
    """
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)


def redact_all(items: list[str] | tuple[str, ...]) -> list[str]:
    """:func:`redact_urls` applied to each item."""
    return [redact_urls(item) for item in items]


def redact_parameters(text: str) -> str:
    """``text`` with the values of secret-looking URL query parameters replaced by ``***``.

    ``?token=abc&page=2`` -> ``?token=***&page=2``; a parameter is secret when its name
    (any case) ends with ``token``, ``secret``, ``password``, ``api_key``, ``signature``,
    ``credential``, ``_key``... or is ``sig``, ``key``, ``sas``, ``code``...
    """
    if "=" not in text or ("?" not in text and "&" not in text):
        return text
    pieces: list[str] = []
    done = 0
    for match in _PARAMETER.finditer(text):
        start = match.end()
        if start < done or not _secret_parameter(match["name"]):
            continue
        value = _PARAMETER_VALUE.match(text, start)
        if value is None:
            continue
        pieces += (text[done:start], REDACTED)
        done = value.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_PARAMETERS or lowered.endswith(_SECRET_PARAMETER_ENDINGS)


class Redactor:
    """Replaces secrets with ``***``: secret values, URL credentials and parameters, ``Authorization``.

    Built once per executor from :attr:`FlashConfig.secret_values`; called on every log
    body, captured line, exception message and span attribute that otel_flash emits,
    and by the exporters' wrappers (:mod:`otel_flash.telemetry.redacting`) on everything exported.
    Text with nothing to hide is returned as the same object, so callers can test
    ``redacted is text`` to learn whether anything changed.
    """

    __slots__ = ("_values",)

    def __init__(self, secret_values: frozenset[str] | set[str] = frozenset()) -> None:
        # longest first, so a secret containing another is replaced whole
        ordered = sorted(secret_values, key=len, reverse=True)
        self._values: re.Pattern[str] | None = (
            re.compile("|".join(map(re.escape, ordered))) if ordered else None
        )

    def __call__(self, text: str) -> str:
        """``text`` with every secret it contains replaced by ``***`` (``text`` itself if none)."""
        original = text
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        if "://" in text:  # the functions' own first filters, without their calls (every log line)
            text = redact_urls(text)
        if "=" in text:
            text = redact_parameters(text)
        if ("z" in text or "Z" in text) and "authoriz" in text.lower():  # 'z': a cheap first filter
            text = _AUTHORIZATION.sub(rf"\g<key>{REDACTED}", text)
        return original if text == original else text  # already-redacted text is not copied again

    def finds_nothing(self, texts: list[str]) -> bool:
        """Whether no text in ``texts`` has anything to redact, in one pass over them all.

        The texts are joined by newlines, which end every pattern's match, so a secret in
        one text is found as it would be alone; a match across two (rare) only answers False.
        """
        joined = "\n".join(texts)
        return self(joined) is joined

    def value(self, value: object, depth: int = 0) -> object:
        """An attribute value redacted: strings, bytes, and the items of lists, tuples and dicts.

        Returns ``value`` itself when nothing in it changed; other types are returned as they are.
        """
        kind = type(value)
        if kind is str:
            return self(value)  # type: ignore[arg-type]  # kind is str
        if kind in _PLAIN or depth >= _MAX_DEPTH:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list | tuple):
            items = [self.value(item, depth + 1) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return type(value)(items)
        if isinstance(value, Mapping):
            changed = self.attributes(value, depth + 1)
            return value if changed is None else changed
        if isinstance(value, bytes):
            text = value.decode("utf-8", "surrogateescape")
            redacted = self(text)
            return value if redacted is text else redacted.encode("utf-8", "surrogateescape")
        return value

    def attributes(self, attributes: Mapping[str, object] | None, depth: int = 0) -> dict[str, Any] | None:
        """A redacted copy of ``attributes``, or None when nothing in them needs redacting."""
        if not attributes:
            return None
        changed: dict[str, Any] | None = None
        for key, old in attributes.items():
            new = self.value(old, depth)
            if new is not old:
                changed = changed if changed is not None else {}
                changed[key] = new
        if changed is None:
            return None
        return {key: changed.get(key, old) for key, old in attributes.items()}
