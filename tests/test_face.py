"""The public face, `omni_bridge`: the product in one sorted `__all__`, loaded lazily, no name meaning two things."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import omni_bridge
import omni_bridge.exceptions
from omni_bridge.agent import events

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("anthropic", "mcp", "starlette", "uvicorn", "httpx2")
"""Imports that cost most of a start; `omni-bridge --version` must not pay for them."""


def isort_style(name: str) -> tuple[int, str]:  # ruff RUF022: CONSTANTS, then Classes, then functions
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_unique() -> None:
    assert omni_bridge.__all__ == sorted(set(omni_bridge.__all__), key=isort_style)


def test_every_name_in_all_resolves() -> None:
    unresolved = [name for name in omni_bridge.__all__ if getattr(omni_bridge, name, None) is None]
    assert unresolved == []


def test_star_import_brings_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from omni_bridge import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(omni_bridge.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(omni_bridge, "RunCancelled")
    assert "Bridge" in dir(omni_bridge)


def test_the_readme_snippet_imports_from_the_package_itself() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    imported = re.search(r"^from omni_bridge import (.+)$", snippet, re.MULTILINE)
    assert imported is not None, "the README's first Python snippet imports from `omni_bridge`"
    names = {name.strip() for name in imported.group(1).split(",")}
    assert {"Bridge", "EndUser", "FinalMessage", "TextDelta"} <= names <= set(omni_bridge.__all__)


def test_importing_the_package_and_reading_settings_loads_nothing_heavy() -> None:
    """The product's names load on first use; `--version` and settings must not pay for the SDKs and servers."""
    probe = (
        "import json, sys\n"
        "import omni_bridge\n"
        "omni_bridge.__version__\n"
        f"bare = sorted(set({HEAVY!r} + ('omni_bridge.agent', 'omni_bridge.tools')) & set(sys.modules))\n"
        "omni_bridge.Settings, omni_bridge.load_settings, omni_bridge.OmniBridgeError\n"
        f"settings = sorted(set({HEAVY!r}) & set(sys.modules))\n"
        "omni_bridge.Bridge\n"
        "print(json.dumps([bare, settings]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [[], []]


def test_every_error_is_exported_and_every_exported_error_exists() -> None:
    defined = {
        name
        for name, value in vars(omni_bridge.exceptions).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == omni_bridge.exceptions.__name__
        and not name.startswith("_")
    }
    exported = {
        name
        for name in omni_bridge.__all__
        if inspect.isclass(value := getattr(omni_bridge, name)) and issubclass(value, BaseException)
    }
    assert exported == defined
    assert all(getattr(omni_bridge, name) is getattr(omni_bridge.exceptions, name) for name in defined)


def members(union: Any) -> list[type]:
    """The classes of a (possibly `Annotated`) union such as `Event` or `ContentPart`."""
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return list(typing.get_args(union))


def test_every_event_and_content_part_is_exported() -> None:
    for cls in [*members(events.Event), *members(events.ContentPart)]:
        assert getattr(omni_bridge, cls.__name__, None) is cls, cls.__name__
    assert omni_bridge.Event is events.Event and omni_bridge.EventAdapter is events.EventAdapter


def models_in(annotation: Any) -> set[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return {annotation}
    return {model for arg in typing.get_args(annotation) for model in models_in(arg)}


def test_every_model_an_event_carries_is_exported() -> None:
    """A consumer can name the type of every field it matches on, e.g. `FinalMessage.message.parts[0].chart`."""
    seen: set[type[BaseModel]] = set()
    todo = {model for event in members(events.Event) for model in models_in(event)}
    while todo:
        model = todo.pop()
        seen.add(model)
        for field in model.model_fields.values():
            todo |= models_in(field.annotation) - seen
    missing = sorted(model.__name__ for model in seen if getattr(omni_bridge, model.__name__, None) is not model)
    assert missing == []


def public_faces() -> list[types.ModuleType]:
    """Every public room's face (`omni_bridge.agent`, `omni_bridge.testing`, ...), and the package's own."""
    rooms = [
        importlib.import_module(f"omni_bridge.{info.name}")
        for info in pkgutil.iter_modules(omni_bridge.__path__)
        if info.ispkg and not info.name.startswith("_") and info.name != "cli"
    ]
    return [omni_bridge, *rooms]


def test_no_exported_name_means_two_things() -> None:
    """A name two faces export (`TextPart`, `Usage`, ...) must be the same object in both."""
    meanings: dict[str, dict[int, list[str]]] = {}
    for face in public_faces():
        for name in getattr(face, "__all__", ()):
            meanings.setdefault(name, {}).setdefault(id(getattr(face, name)), []).append(face.__name__)
    assert {name: list(by.values()) for name, by in meanings.items() if len(by) > 1} == {}
