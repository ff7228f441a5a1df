"""Validating dependency entries before any process starts, and checking what is installed.

Python entries must be PEP 508 requirements (``name[extras] specifier ; marker``
or ``name @ URL`` with an ``http``/``https`` URL); system entries must be Debian
package names, optionally with ``:arch`` and ``=version``. Anything else (``--index-url ...``, ``-r file``,
``-e .``, empty strings, shell syntax) is refused, so no entry can ever be read
as an installer option; so is a direct reference to anything but a remote archive
(``pkg @ file:///dir``, ``pkg @ /path``, ``pkg @ git+https://...``): a local path
would build code from the worker's own disk, in the worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import metadata
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from otel_flash.exceptions import DependencyError
from otel_flash.redaction import redact_urls

# Never needed in a requirement, always meaningful to a shell. ';', quotes, '<' and
# '>' are absent on purpose: specifiers and markers use them, and packaging checks those.
_SHELL_CHARACTERS = frozenset("`$|&\\\n\r\t\0")
# Debian policy 5.6.1 (name), 5.6.12 (version), plus apt's ':arch' qualifier.
_DEBIAN_PACKAGE = re.compile(
    r"[a-z0-9][a-z0-9+.-]+"
    r"(?::[a-z0-9][a-z0-9-]*)?"
    r"(?:=(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*(?:-[A-Za-z0-9.+~]+)?)?"
)


def parse_requirements(entries: Iterable[str]) -> list[Requirement]:
    """Parse every entry as a PEP 508 requirement.

    Raises:
        DependencyError: an entry is not a requirement; the message names it (redacted).
    """
    parsed = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            msg = f"refused Python dependency {entry!r}: empty"
            raise DependencyError(msg)
        bad = sorted(_SHELL_CHARACTERS.intersection(entry))
        if bad:
            msg = f"refused Python dependency {redact_urls(entry)!r}: contains {''.join(bad)!r}"
            raise DependencyError(msg)
        try:
            requirement = Requirement(entry)
        except InvalidRequirement as exc:
            msg = f"refused Python dependency {redact_urls(entry)!r}: not a PEP 508 requirement"
            raise DependencyError(msg) from exc
        if requirement.url is not None and not _remote(requirement.url):
            msg = (
                f"refused Python dependency {redact_urls(entry)!r}: only http and https URLs are installed"
                " (local paths, file: and VCS URLs are refused)"
            )
            raise DependencyError(msg)
        parsed.append(requirement)
    return parsed


def _remote(url: str) -> bool:
    """Whether a direct reference names an archive on a remote host (``http``/``https``)."""
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def check_system_packages(packages: Iterable[str]) -> list[str]:
    """Return ``packages`` if each is a Debian package name (``name[:arch][=version]``).

    Raises:
        DependencyError: an entry is not a package name; the message names it.
    """
    checked = []
    for package in packages:
        if not isinstance(package, str) or _DEBIAN_PACKAGE.fullmatch(package) is None:
            msg = f"refused system dependency {package!r}: not a Debian package name"
            raise DependencyError(msg)
        checked.append(package)
    return checked


def unsatisfied(requirements: Iterable[Requirement], path: list[str] | None = None) -> list[Requirement]:
    """The requirements not installed at a matching version.

    Looks at the distributions on ``path`` (default ``sys.path``). A requirement
    whose marker does not apply here counts as satisfied; a URL requirement is
    satisfied only by a distribution installed from that same URL; extras are
    followed through the requirements they add.
    """
    installed = _Installed(path)
    return [req for req in applicable(requirements) if not _satisfied(req, installed, set())]


class _Installed:
    """Distributions on a search path, looked up by name (the first on the path wins)."""

    __slots__ = ("_found", "_path")

    def __init__(self, path: list[str] | None) -> None:
        self._path = path
        self._found: dict[str, metadata.Distribution | None] = {}

    def get(self, name: str) -> metadata.Distribution | None:
        key = canonicalize_name(name)
        if key not in self._found:
            found = (
                metadata.distributions(name=name)
                if self._path is None
                else metadata.distributions(name=name, path=self._path)
            )
            self._found[key] = next(iter(found), None)
        return self._found[key]


def _satisfied(req: Requirement, installed: _Installed, seen: set[str]) -> bool:
    key = f"{canonicalize_name(req.name)}[{','.join(sorted(req.extras))}]"
    if key in seen:
        return True
    seen.add(key)
    dist = installed.get(req.name)
    if dist is None or not _version_matches(req, dist):
        return False
    for extra in req.extras:
        for line in dist.requires or ():
            sub = Requirement(line)
            if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                sub.marker = None
                if not _satisfied(sub, installed, seen):
                    return False
    return True


def _version_matches(req: Requirement, dist: metadata.Distribution) -> bool:
    if req.url:
        direct = dist.read_text("direct_url.json")
        return direct is not None and json.loads(direct).get("url") == req.url
    try:
        return req.specifier.contains(Version(dist.version), prereleases=True)
    except InvalidVersion:
        return False


def applicable(requirements: Iterable[Requirement]) -> list[Requirement]:
    """The requirements whose environment marker holds for this interpreter."""
    return [req for req in requirements if req.marker is None or req.marker.evaluate()]
