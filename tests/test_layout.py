"""The package's layout: marked public surfaces, and subpackages that import each other one way."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import otel_flash

PACKAGE = Path(otel_flash.__file__).parent
# The public face: what subpackages serve, so none of them imports it.
FACE = {"cli", "client", "executor", "integrations", "server", "streaming", "testing"}
# The public modules README.md lists: each marks its public names with ``__all__``.
PUBLIC_MODULES = [
    "otel_flash.cli",
    "otel_flash.client",
    "otel_flash.config",
    "otel_flash.exceptions",
    "otel_flash.executor",
    "otel_flash.export_settings",
    "otel_flash.integrations.runpod",
    "otel_flash.protocol",
    "otel_flash.redaction",
    "otel_flash.semconv",
    "otel_flash.server",
    "otel_flash.streaming",
    "otel_flash.testing",
]


def _packages() -> list[str]:
    names = ["otel_flash"]
    for info in pkgutil.walk_packages([str(PACKAGE)], "otel_flash."):
        if info.ispkg:
            names.append(info.name)
    return sorted(names)


def _top_level_units() -> set[str]:
    return {info.name for info in pkgutil.iter_modules([str(PACKAGE)])}


def _imported_units(path: Path, units: set[str]) -> set[str]:
    """The top-level modules and subpackages of otel_flash that the module at ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "otel_flash":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "otel_flash" and len(parts) > 1:
                    found.add(parts[1])
    return found & units


def _subpackage_imports() -> dict[str, set[str]]:
    """For each subpackage, the other top-level units its modules import."""
    units = _top_level_units()
    graph: dict[str, set[str]] = {}
    for directory in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        imported: set[str] = set()
        for path in directory.rglob("*.py"):
            imported |= _imported_units(path, units)
        graph[directory.name] = imported - {directory.name}
    return graph


def test_root_all_is_complete_and_sorted() -> None:
    """``otel_flash.__all__`` is sorted and names every public object of the root namespace."""
    public = {
        name
        for name, value in vars(otel_flash).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert otel_flash.__all__ == sorted(otel_flash.__all__)
    assert set(otel_flash.__all__) == public | {"__version__"}


@pytest.mark.parametrize("name", _packages())
def test_every_package_declares_all(name: str) -> None:
    """Every package's ``__init__`` has an ``__all__`` (ruff keeps it sorted) whose names all exist."""
    package = importlib.import_module(name)
    for item in package.__all__:
        assert hasattr(package, item), f"{name}.{item}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_declares_all(name: str) -> None:
    """A public module names its public objects in ``__all__``, and README lists the module."""
    module = importlib.import_module(name)
    for item in module.__all__:
        assert hasattr(module, item), f"{name}.{item}"
    assert f"`{name}`" in (PACKAGE.parent / "README.md").read_text(encoding="utf-8")


def test_subpackages_import_each_other_one_way() -> None:
    """No import cycle runs between subpackages, counting those through top-level modules."""
    units = _top_level_units()
    graph = {unit: set[str]() for unit in units}
    for path in PACKAGE.glob("*.py"):
        graph[path.stem] = _imported_units(path, units) - {path.stem}
    imports = _subpackage_imports()
    graph.update(imports)
    subpackages = set(imports)

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            unit = todo.pop()
            if unit not in seen:
                seen.add(unit)
                todo.extend(graph.get(unit, ()))
        return seen

    cycles = sorted(unit for unit in subpackages if unit in reachable(unit))
    assert cycles == []


def test_subpackages_do_not_import_the_public_face() -> None:
    """Subpackages serve the executor and the entry points; none imports them back."""
    upward = {package: sorted(imported & FACE) for package, imported in _subpackage_imports().items()}
    assert {package: names for package, names in upward.items() if names and package != "integrations"} == {}
