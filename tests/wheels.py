"""Tiny real wheels (and one sdist) built into a directory, for installers run with ``--no-index``."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import textwrap
import zipfile
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(
    directory: Path,
    name: str,
    version: str = "1.0",
    *,
    source: str | None = None,
    requires: Sequence[str] = (),
) -> Path:
    """Write ``name-version-py3-none-any.whl`` into ``directory`` and return its path.

    The wheel holds one module named like the distribution (``-`` becomes ``_``)
    whose source is ``source`` (default: ``VERSION = "<version>"``).
    """
    module = canonicalize_name(name).replace("-", "_")
    info = f"{module}-{version}.dist-info"
    requires_lines = "".join(f"Requires-Dist: {req}\n" for req in requires)
    files = {
        f"{module}.py": (source or f"VERSION = {version!r}\n").encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires_lines}"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: otel-flash-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def build_hanging_sdist(directory: Path, name: str, pid_file: Path) -> Path:
    """Write an sdist whose in-tree build backend records its pid in ``pid_file``, then hangs.

    Installing it makes pip start a build subprocess that never finishes: a real
    installer stuck in a real child process.
    """
    module = canonicalize_name(name).replace("-", "_")
    root = f"{module}-1.0"
    backend = textwrap.dedent(
        f"""
        import os, sys, time
        print("hanging build backend started", flush=True)
        with open({str(pid_file)!r}, "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(600)
        """
    )
    files = {
        f"{root}/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "hang_backend"\nbackend-path = ["."]\n'
        ),
        f"{root}/hang_backend.py": backend,
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    return path
