"""Hiding credentials written inside URLs (``https://user:token@host/...``).

Requirement strings, installer output and error messages can carry a private
index's credentials. Everything otel_flash shows (stdout, span attributes,
exported log records, error messages) passes through :func:`redact_urls` first.
"""

from __future__ import annotations

import re

REDACTED = "***"

# scheme://userinfo@ where userinfo has no '/', '@' or whitespace: the whole
# userinfo goes, because a token is often written as the user name alone.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def redact_urls(text: str) -> str:
    """``text`` with the user information of every URL replaced by ``***``.

    Example: ``pkg @ https://me:s3cret@host/pkg.whl`` -> ``pkg @ https://***@host/pkg.whl``.
    """
    if "@" not in text:
        return text
    return _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)


def redact_all(items: list[str] | tuple[str, ...]) -> list[str]:
    """:func:`redact_urls` applied to each item."""
    return [redact_urls(item) for item in items]


# "Authorization: Bearer abc", "authorization=Basic abc", "'Authorization': 'token abc'"
_AUTHORIZATION = re.compile(
    r"(?P<key>(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?P<value>(?:[A-Za-z]+\s+)?[^\s'\",}]+)",
    re.IGNORECASE,
)


class Redactor:
    """Replaces secrets with ``***``: URL credentials, ``Authorization`` values, secret values.

    Built once per executor from :attr:`FlashConfig.secret_values`; called on every log
    body, captured line, exception message and span attribute that otel_flash emits.
    """

    __slots__ = ("_values",)

    def __init__(self, secret_values: frozenset[str] | set[str] = frozenset()) -> None:
        # longest first, so a secret containing another is replaced whole
        ordered = sorted(secret_values, key=len, reverse=True)
        self._values: re.Pattern[str] | None = (
            re.compile("|".join(map(re.escape, ordered))) if ordered else None
        )

    def __call__(self, text: str) -> str:
        """``text`` with every secret it contains replaced by ``***``."""
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        if "@" in text:
            text = redact_urls(text)
        if "uthorization" in text or "UTHORIZATION" in text:
            text = _AUTHORIZATION.sub(rf"\g<key>{REDACTED}", text)
        return text

    def value(self, value: object) -> object:
        """A string redacted; a list or tuple of strings redacted item by item; others unchanged."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list | tuple):
            return type(value)(self(item) if isinstance(item, str) else item for item in value)
        return value
