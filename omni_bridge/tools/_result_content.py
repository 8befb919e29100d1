"""What an MCP tool result holds: its content blocks sorted, and the table in it, wherever Omni put it.

Omni does not document the format of its tool results (CSV, markdown or JSON, and in which envelope), so a table
is looked for, in order, as a `csv`/`csvResult` string anywhere in `structured_content` (getData, checkStatus's
`result.actions[].result`), a list of row objects under `rows`/`data`/`records`/`results` there, a `text/csv`
embedded resource, a ```` ```csv ```` fenced block in the text, and JSON text holding either of the structured
forms. The last table found is the one shown; the others are counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omni_bridge.tools._artifacts import csv_cell, rows_to_csv

if TYPE_CHECKING:
    import mcp.types as types

__all__ = ["FoundTable", "ResultParts", "find_table"]

_CSV_KEYS = ("csv", "csvResult")
_ROW_KEYS = ("rows", "data", "records", "results")
_META_KEYS = (
    "modelId",
    "topicName",
    "topic",
    "queryName",
    "totalRowCount",
    "truncated",
    "csvResultWasTruncated",
    "fields",
    "query",
    "accessFilters",
    "sql",
    "omniChatUrl",
)
_PROSE_KEYS = ("message", "resultSummary")
_MAX_WALK_NODES = 2000
"""How many dicts and lists of a structured result are searched for a table, at most."""
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The image types the Messages API accepts; other images are replaced by a note."""
_CSV_FENCE = re.compile(r"```csv[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(slots=True)
class ResultParts:
    """A result's content, sorted: texts (with notes for what cannot be shown), images, CSV resources."""

    texts: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    csv_resources: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, content: Sequence[types.ContentBlock]) -> ResultParts:
        import mcp.types as types  # here: a result exists only once `mcp` is loaded, and starting need not load it

        parts = cls()
        for block in content:
            if isinstance(block, types.TextContent):
                parts.texts.append(block.text)
            elif isinstance(block, types.ImageContent):
                if block.mime_type in _IMAGE_TYPES:
                    source = {"type": "base64", "media_type": block.mime_type, "data": block.data}
                    parts.images.append({"type": "image", "source": source})
                else:
                    parts.texts.append(f"[an image of type {block.mime_type} was left out]")
            elif isinstance(block, types.EmbeddedResource):
                resource = block.resource
                if isinstance(resource, types.TextResourceContents):
                    if (resource.mime_type or "").split(";")[0].strip() == "text/csv":
                        parts.csv_resources.append(resource.text)
                    else:
                        parts.texts.append(resource.text)
                else:
                    parts.texts.append(f"[binary resource {resource.uri} ({resource.mime_type}) was left out]")
            elif isinstance(block, types.ResourceLink):
                parts.texts.append(f"[resource {block.name}: {block.uri}]")
            else:
                parts.texts.append(f"[{block.type} content was left out]")
        return parts

    def content(self, text: str) -> list[dict[str, Any]]:
        return [{"type": "text", "text": text}, *self.images]


@dataclass(frozen=True, slots=True)
class FoundTable:
    csv: str
    meta: dict[str, Any]
    """Known fields about the query (topic, SQL, link, row totals), nearest to the table winning."""
    prose: str
    """What the server said around the table."""
    source: str
    """Where the table was found, e.g. `structured_content` or `text`."""
    others: int = 0
    """Further tables in the result that the preview does not show (the last one is shown)."""


def find_table(structured: dict[str, Any] | None, parts: ResultParts) -> FoundTable | None:
    """The result's table, looked for where Omni might put one, in the order the module docstring gives."""
    if isinstance(structured, dict):
        found = _table_in_json(structured, "structured_content")
        if found is not None:
            return found
    if parts.csv_resources:
        return FoundTable(
            parts.csv_resources[-1], {}, "\n\n".join(parts.texts), "resource", len(parts.csv_resources) - 1
        )
    for index, text in enumerate(parts.texts):
        matches = list(_CSV_FENCE.finditer(text))
        if matches:
            last = matches[-1]
            rest = [*parts.texts[:index], text[: last.start()] + text[last.end() :], *parts.texts[index + 1 :]]
            prose = "\n\n".join(p.strip() for p in rest if p.strip())
            return FoundTable(last.group(1), {}, prose, "text", len(matches) - 1)
    for text in parts.texts:
        stripped = text.strip()
        if stripped[:1] in ("[", "{"):
            try:
                value = json.loads(stripped)
            except ValueError:
                continue
            found = _table_in_json(value, "text")
            if found is not None:
                return found
    return None


def _table_in_json(value: Any, source: str) -> FoundTable | None:
    """The last CSV string, else the last list of row objects, in a JSON value, with what surrounds it."""
    csv_found: list[tuple[str, list[dict[str, Any]]]] = []
    rows_found: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    stack: list[tuple[Any, list[dict[str, Any]]]] = [(value, [])]
    if _is_rows(value):  # a bare list of row objects: the table itself
        rows_found.append((value, []))
        stack = []
    visited = 0
    while stack and visited < _MAX_WALK_NODES:
        node, chain = stack.pop()
        visited += 1
        children: list[tuple[Any, list[dict[str, Any]]]] = []
        if isinstance(node, dict):
            chain = [*chain, node]
            for key, child in node.items():
                if key in _CSV_KEYS and isinstance(child, str) and child.strip():
                    csv_found.append((child, chain))
                elif key in _ROW_KEYS and _is_rows(child):
                    rows_found.append((child, chain))
                elif isinstance(child, dict | list):
                    children.append((child, chain))
        elif isinstance(node, list):
            children = [(child, chain) for child in node if isinstance(child, dict | list)]
        stack.extend(reversed(children))  # depth first, in document order
    if csv_found:
        text, chain = csv_found[-1]
        others = len(csv_found) - 1
    elif rows_found:
        rows, chain = rows_found[-1]
        text, others = _records_to_csv(rows), len(rows_found) - 1
    else:
        return None
    meta: dict[str, Any] = {}
    prose = ""
    for holder in chain:
        meta.update({key: holder[key] for key in _META_KEYS if key in holder})
        if not prose:
            prose = next((holder[k] for k in _PROSE_KEYS if isinstance(holder.get(k), str) and holder[k]), "")
    return FoundTable(text, meta, prose.strip(), source, others)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)


def _records_to_csv(records: list[dict[str, Any]]) -> str:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    names = list(columns)
    return rows_to_csv(names, [[csv_cell(record.get(name)) for name in names] for record in records])
