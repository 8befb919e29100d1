"""MCP tool descriptions turned into Claude tool definitions the Messages API accepts.

The API wants names matching `^[a-zA-Z0-9_-]{1,64}$` and an `input_schema` that is a JSON Schema object.
MCP allows longer names with other characters, and servers emit schemas with extras (`$schema`, `title`s),
so names are sanitised (and mapped back on the call) and the schema's top level is normalised; everything
inside it is left as the server wrote it, since the API accepts standard JSON Schema keywords.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mcp_types as types  # in annotations only: `mcp` is imported when a session opens

__all__ = ["ClaudeTool", "claude_tools"]

_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 64
_MAX_DESCRIPTION = 4096

ClaudeTool = dict[str, Any]
"""A tool definition as the Messages API takes it: `{"name", "description", "input_schema"}`."""


def _claude_name(name: str, taken: set[str]) -> str:
    base = _INVALID.sub("_", name)[:_MAX_NAME] or "tool"
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate, n = base[: _MAX_NAME - len(suffix)] + suffix, n + 1
    return candidate


def _input_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    normalised = {k: v for k, v in (schema or {}).items() if k not in ("$schema", "$id")}
    normalised["type"] = "object"
    normalised.setdefault("properties", {})
    return normalised


def claude_tools(
    tools: Iterable[types.Tool], *, reserved: Iterable[str] = ()
) -> tuple[list[ClaudeTool], dict[str, str]]:
    """Claude definitions for `tools`, in their order, and the map from each Claude name to the MCP name.

    Args:
        tools: the MCP tools to offer.
        reserved: names already used (the bridge's own tools); an MCP tool never takes one of them.
    """
    taken = set(reserved)
    definitions: list[ClaudeTool] = []
    names: dict[str, str] = {}
    for tool in tools:
        name = _claude_name(tool.name, taken)
        taken.add(name)
        names[name] = tool.name
        description = tool.description or tool.title or f"The {tool.name} tool of Omni."
        definitions.append(
            {
                "name": name,
                "description": description[:_MAX_DESCRIPTION],
                "input_schema": _input_schema(tool.input_schema),
            }
        )
    return definitions, names
