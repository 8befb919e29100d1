"""The package's layout holds: dependencies point one way, and no package reaches into another's private module.

The rooms and their order (docs/architecture.md): cli -> server / integrations -> stores -> agent -> tools ->
config, with types, exceptions, prompts, sandbox and testing as leaves, and the root's own private helpers
(`omni_bridge._serving`, ...) as plumbing any room may use. Imports inside functions count as well: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "omni_bridge"

# What each room may import besides itself, the leaves and the root's private helpers.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "tools": {"config"},
    "agent": {"tools", "config"},
    "stores": {"agent", "tools", "config"},
    "server": {"stores", "agent", "tools", "config"},
    "integrations": {"agent", "tools", "config"},
    "cli": {"server", "integrations", "stores", "agent", "tools", "config"},
}
LEAVES = {"types", "exceptions", "prompts", "sandbox", "testing"}
"""A leaf imports no room, only other leaves' types and errors: the sandbox and the testing fakes stand apart
from the bridge, so they can play Omni and Anthropic for it."""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in found if name == "omni_bridge" or name.startswith("omni_bridge.")]


def _room(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 else relative.stem


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_the_rooms_of_the_layout() -> None:
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == set(ALLOWED) | {"prompts", "sandbox", "testing"}
    assert (PACKAGE / "agent" / "engines" / "__init__.py").exists()


def test_no_module_imports_another_packages_private_module() -> None:
    offenders = []
    for path in _modules():
        room = _room(path)
        for line, name in _imports(path):
            parts = name.split(".")
            private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
            if private is None or private == 1:
                continue  # a face, or one of the root's private helpers (`omni_bridge._serving`)
            if parts[1] != room:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    assert offenders == []


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_dependencies_point_one_way(room: str) -> None:
    allowed = ALLOWED[room] | LEAVES | {room}
    offenders = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for line, name in _imports(path):
            parts = name.split(".")
            if len(parts) < 2 or parts[1].startswith("_"):
                continue
            if parts[1] not in allowed:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    assert offenders == []


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaves_import_no_room(leaf: str) -> None:
    where = PACKAGE / leaf
    paths = sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]
    rooms = set(ALLOWED) | LEAVES
    allowed = {"exceptions", "types", leaf}
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
        for path in paths
        for line, name in _imports(path)
        if len(name.split(".")) > 1 and name.split(".")[1] in rooms - allowed
    ]
    assert offenders == []


def test_nothing_imports_the_cli() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
        for path in _modules()
        if _room(path) != "cli"
        for line, name in _imports(path)
        if name == "omni_bridge.cli" or name.startswith("omni_bridge.cli.")
    ]
    assert offenders == []
