"""Tool results shaped three ways: budgeted text for Claude, the full artifact, and a derived chart.

Large tool results are the most common complaint about agent hosts (peers.md §0.6): a 50,000-row answer pasted
into the conversation costs a fortune, crowds out the question and fails the request outright past the context
window. So the model sees a preview that fits a token budget — a header line, the CSV header and as many first
rows as fit, and a note naming the `result_id` — while the whole result is kept as an `Artifact`, and the
bridge-local `read_result` tool pages through the rest (peers.md §4.7).

Tokens are estimated as characters / `CHARS_PER_TOKEN` (4): cheap, needs no tokenizer, and close for the CSV,
numbers and English these results hold. The budget is enforced on characters: a preview is never longer than
`budget_tokens * CHARS_PER_TOKEN`. Images are passed through and not counted.

Omni's result formats are not documented (omni-api.md, Unknowns 2), so a table is looked for, in order, as a
`csv`/`csvResult` string anywhere in `structured_content` (getData, checkStatus's `result.actions[].result`), a
list of row objects under `rows`/`data`/`records`/`results` there, a `text/csv` embedded resource, a ```` ```csv ````
fenced block in the text, and JSON text holding either of the structured forms. A result without a table is
text, budgeted the same way; an error result passes through as an error, cut to the budget if it must be.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp.types as types

from omni_bridge.tools._artifacts import Artifact, ArtifactStore, rows_to_csv
from omni_bridge.tools._chart import MAX_CHART_POINTS, DataChart, derive_chart

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_BUDGET_TOKENS",
    "DEFAULT_READ_LIMIT",
    "MAX_READ_LIMIT",
    "READ_RESULT_TOOL",
    "InvalidReadArguments",
    "ReadResult",
    "ReadResultError",
    "ResultNotFound",
    "ShapedResult",
    "estimate_tokens",
    "read_result",
    "shape_result",
]

CHARS_PER_TOKEN = 4
"""Characters per token in the budget's estimate (tokens = ceil(chars / 4))."""
DEFAULT_BUDGET_TOKENS = 4000
MIN_BUDGET_TOKENS = 100
"""Below this not even the note naming the result id is sure to fit."""
DEFAULT_READ_LIMIT = 200
MAX_READ_LIMIT = 1000

_PROSE_SHARE = 4
"""What a server says around a table (a summary, a message) gets at most 1/4 of the budget."""
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
    "sql",
    "omniChatUrl",
)
_PROSE_KEYS = ("message", "resultSummary")
_MAX_WALK_NODES = 2000
"""How many dicts and lists of a structured result are searched for a table, at most."""
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The image types the Messages API accepts; other images are replaced by a note."""
_CSV_FENCE = re.compile(r"```csv[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FENCE_OPEN = "```csv\n"
_FENCE_CLOSE = "```"
_CUT_MARK = "\n[…cut to fit the budget]"

READ_RESULT_TOOL: dict[str, Any] = {
    "name": "read_result",
    "description": (
        "Read more of an earlier tool result that was too large to show in full. A result that was cut says so "
        'and names its result_id (like "res_…"). Returns the rows [offset, offset + limit) as CSV with the header '
        "line (for a text result: its lines), fewer if they would not fit, and next_offset when more remain. "
        "Offsets count data rows from 0. Ask only for the rows you need: a summary over all rows is better asked "
        "of Omni as a new question."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "result_id": {"type": "string", "description": "The result_id named in the earlier result."},
            "offset": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "The first row to return, counting from 0 (the cut result's note gives it).",
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_READ_LIMIT,
                "default": DEFAULT_READ_LIMIT,
                "description": "How many rows to return at most.",
            },
        },
        "required": ["result_id"],
        "additionalProperties": False,
    },
}
"""The Claude tool definition of the bridge-local `read_result` tool."""


@dataclass(frozen=True, slots=True)
class ShapedResult:
    """A tool result, ready for Claude and for the events about it."""

    content: list[dict[str, Any]]
    """The Anthropic `tool_result` content blocks: text (within the budget) and images."""
    is_error: bool
    summary: str
    """One line for UI events, e.g. `"52,290 rows, 4 columns (first 120 shown)"`."""
    artifact_id: str | None = None
    """The kept artifact: every table, and text too long for the budget."""
    row_count: int | None = None
    """Rows in the full table (the artifact); `None` when the result is not a table."""
    total_row_count: int | None = None
    """Rows Omni said the query had, when it said so (more than `row_count` when Omni truncated)."""
    shown_rows: int = 0
    """Rows the model sees in `content`."""
    columns: list[str] = field(default_factory=list)
    chart: DataChart | None = None
    omni_chat_url: str | None = None

    @property
    def text(self) -> str:
        """The text the model sees (all text blocks)."""
        return "\n\n".join(block["text"] for block in self.content if block["type"] == "text")


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One page of an artifact, as `read_result` returns it."""

    result_id: str
    kind: Literal["table", "text"]
    text: str
    """What the model sees: the CSV (header line included) then where the page lies; for text, where the page
    lies on the first line, then the lines exactly as stored."""
    offset: int
    count: int
    """Rows (lines, for text) in this page."""
    total_rows: int
    """Rows (lines, for text) in the whole artifact."""
    next_offset: int | None
    """Where the next page starts; `None` at the end."""


class ReadResultError(Exception):
    """A `read_result` call that cannot be answered; the message tells the model what to do instead.

    The toolset turns it into an `is_error` tool result carrying `str(exc)`.
    """


class ResultNotFound(ReadResultError, LookupError):
    """No such result for this user: never stored, dropped, or another user's (which is not revealed)."""


class InvalidReadArguments(ReadResultError, ValueError):
    """`offset` or `limit` is out of range."""


def estimate_tokens(text: str) -> int:
    """The budget's token estimate for `text`: characters / `CHARS_PER_TOKEN`, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


async def shape_result(
    result: types.CallToolResult,
    *,
    tool: str,
    owner: str,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    artifacts: ArtifactStore,
) -> ShapedResult:
    """Shape one MCP tool result for Claude, keep it in full, and chart it when it is a chartable table.

    Args:
        result: What the MCP server returned.
        tool: The tool's name (kept with the artifact, shown in the preview's first line).
        owner: The Omni user the call ran as; only they can `read_result` the artifact.
        budget_tokens: The most the text for the model may cost, estimated as characters / 4.
        artifacts: Where tables and long texts are kept.

    Returns:
        The shaped result. Every table is stored as an artifact (so charts and downloads can use it); text is
        stored only when it was cut; errors are never stored.

    Raises:
        ValueError: `budget_tokens` is below `MIN_BUDGET_TOKENS`.
    """
    if budget_tokens < MIN_BUDGET_TOKENS:
        raise ValueError(f"budget_tokens must be at least {MIN_BUDGET_TOKENS}, got {budget_tokens}")
    budget = budget_tokens * CHARS_PER_TOKEN
    parts = _Parts.of(result.content)
    structured = result.structured_content
    if result.is_error:
        return _shape_error(parts, structured, budget)
    found = _find_table(structured, parts)
    if found is not None:
        try:
            artifact, head = Artifact.from_csv(
                found.csv,
                owner=owner,
                tool=tool,
                total_row_count=_int_or_none(found.meta.get("totalRowCount")),
                data={**found.meta, "source": found.source},
                keep_rows=MAX_CHART_POINTS + 1,
            )
        except (ValueError, csv.Error):
            found = None  # not CSV after all: show it as the text it is
        else:
            await artifacts.put(artifact)
            chart = derive_chart(artifact.columns, head) if artifact.row_count <= MAX_CHART_POINTS else None
            return _shape_table(artifact, found, parts, chart, budget)
    return await _shape_text(parts, structured, owner=owner, tool=tool, budget=budget, artifacts=artifacts)


async def read_result(
    artifacts: ArtifactStore,
    *,
    owner: str,
    result_id: str,
    offset: int = 0,
    limit: int = DEFAULT_READ_LIMIT,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
) -> ReadResult:
    """Rows `[offset, offset + limit)` of a kept result, as CSV with its header line, within the budget.

    Fewer rows come back when the budget is reached first; `next_offset` says where to go on. An offset at or
    past the end gives an empty page with a note, not an error. For a text artifact the units are lines (a
    line over `TEXT_LINE_MAX_CHARS` counts as several); joining all pages gives the text back exactly.

    Args:
        artifacts: Where the result was kept.
        owner: The Omni user asking; another user's result is not found.
        result_id: The id the cut result named.
        offset: The first row, counting data rows from 0.
        limit: How many rows at most, 1 to `MAX_READ_LIMIT`.
        budget_tokens: The most the page may cost, estimated as characters / 4.

    Raises:
        InvalidReadArguments: `offset` is negative or not an integer, `limit` is outside 1..`MAX_READ_LIMIT`,
            or `budget_tokens` is below `MIN_BUDGET_TOKENS`.
        ResultNotFound: No result `result_id` belongs to `owner`.
    """
    if not _is_int(offset) or offset < 0:
        raise InvalidReadArguments(f"offset must be an integer of 0 or more (rows count from 0); got {offset!r}")
    if not _is_int(limit) or not 1 <= limit <= MAX_READ_LIMIT:
        raise InvalidReadArguments(f"limit must be an integer from 1 to {MAX_READ_LIMIT}; got {limit!r}")
    if budget_tokens < MIN_BUDGET_TOKENS:
        raise InvalidReadArguments(f"budget_tokens must be at least {MIN_BUDGET_TOKENS}; got {budget_tokens}")
    artifact = await artifacts.get(result_id, owner=owner) if isinstance(result_id, str) else None
    if artifact is None:
        raise ResultNotFound(
            f"No result with id {result_id!r} is available. Result ids come from earlier tool results in this "
            "conversation (and old results may have been dropped): ask the question again to get the data."
        )
    kind: Literal["table", "text"] = "table" if artifact.is_table else "text"
    unit = "row" if artifact.is_table else "line"
    total = artifact.unit_count()
    if offset >= total:
        last = f" (offsets 0-{total - 1})" if total else ""
        text = f"No {unit}s at offset {offset}: result {artifact.id} has {total:,} {unit}s{last}. This is the end."
        return ReadResult(artifact.id, kind, text, offset, 0, total, None)

    budget = budget_tokens * CHARS_PER_TOKEN
    opening, closing = (_FENCE_OPEN + artifact.header_line(), _FENCE_CLOSE) if artifact.is_table else ("", "")
    worst_trailer = _page_trailer(unit, offset, total, total, cut=True)
    allowance = budget - len(opening) - len(closing) - len(worst_trailer) - 1
    chunks, _ = _take(artifact.unit_texts(offset, offset + limit), allowance)
    cut = False
    if not chunks:  # a single row longer than the whole budget: show its start rather than stall
        first = next(artifact.unit_texts(offset, offset + 1))
        chunks, cut = [_cut(first, max(allowance, 0)) + ("\n" if artifact.is_table else "")], True
    end = offset + len(chunks)
    next_offset = end if end < total else None
    trailer = _page_trailer(unit, offset, end, total, cut)
    if artifact.is_table:
        text = opening + "".join(chunks) + closing + "\n" + trailer
    else:  # where the page lies goes first, so the lines after it are exactly the stored ones
        text = trailer + "\n" + "".join(chunks)
    return ReadResult(artifact.id, kind, _cut(text, budget), offset, len(chunks), total, next_offset)


# --- what a result holds ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parts:
    """A result's content, sorted: texts (with notes for what cannot be shown), images, CSV resources."""

    texts: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    csv_resources: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, content: Sequence[types.ContentBlock]) -> _Parts:
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
class _Table:
    csv: str
    meta: dict[str, Any]
    """Known fields about the query (topic, SQL, link, row totals), nearest to the table winning."""
    prose: str
    """What the server said around the table."""
    source: str
    """Where the table was found, e.g. `structured_content` or `text`."""
    others: int = 0
    """Further tables in the result that the preview does not show (the last one is shown)."""


def _find_table(structured: dict[str, Any] | None, parts: _Parts) -> _Table | None:
    """The result's table, looked for where Omni might put one (see the module docstring)."""
    if isinstance(structured, dict):
        found = _table_in_json(structured, "structured_content")
        if found is not None:
            return found
    if parts.csv_resources:
        return _Table(parts.csv_resources[-1], {}, "\n\n".join(parts.texts), "resource", len(parts.csv_resources) - 1)
    for index, text in enumerate(parts.texts):
        matches = list(_CSV_FENCE.finditer(text))
        if matches:
            last = matches[-1]
            rest = [*parts.texts[:index], text[: last.start()] + text[last.end() :], *parts.texts[index + 1 :]]
            prose = "\n\n".join(p.strip() for p in rest if p.strip())
            return _Table(last.group(1), {}, prose, "text", len(matches) - 1)
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


def _table_in_json(value: Any, source: str) -> _Table | None:
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
    return _Table(text, meta, prose.strip(), source, others)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)


def _records_to_csv(records: list[dict[str, Any]]) -> str:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    names = list(columns)
    return rows_to_csv(names, [[_cell(record.get(name)) for name in names] for record in records])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# --- the three shapes ----------------------------------------------------------------------------------


def _shape_table(
    artifact: Artifact, found: _Table, parts: _Parts, chart: DataChart | None, budget: int
) -> ShapedResult:
    """Header line, server prose, CSV header and first rows, the note when rows are left out, then the extras."""
    n, columns, meta = artifact.row_count, artifact.columns, found.meta
    total = _int_or_none(meta.get("totalRowCount"))
    lead = f"{artifact.tool} returned {_count(n, 'row')} × {_count(len(columns), 'column')}"
    topic = meta.get("topicName") or meta.get("topic")
    if isinstance(topic, str) and topic:
        lead += f" from topic {topic}"
    if total is not None and total > n:
        lead += (
            f". Omni found {total:,} rows and returned only the first {n:,} (its row limit): ask a narrower "
            "question or a higher limit for the rest"
        )
    if found.others:
        lead += f" (the last of {found.others + 1} tables in the result)"
    lead += ".\n\n"
    prose = found.prose
    if prose:
        prose = _cut(prose, budget // _PROSE_SHARE) + "\n\n"
    opening = _FENCE_OPEN + artifact.header_line()
    fixed = len(lead) + len(prose) + len(opening) + len(_FENCE_CLOSE)
    if fixed + len(_table_note(artifact.id, n, n)) + 2 > budget:  # nothing but the essentials fits
        prose = ""
        fixed = len(lead) + len(opening) + len(_FENCE_CLOSE)
    rows, complete = _take(artifact.unit_texts(0, n), budget - fixed)
    note = ""
    if not complete:
        rows, _ = _take(iter(rows), budget - fixed - len(_table_note(artifact.id, n, n)) - 2)
        note = "\n\n" + _table_note(artifact.id, len(rows), n)
    text = lead + prose + opening + "".join(rows) + _FENCE_CLOSE + note
    url = meta.get("omniChatUrl") if isinstance(meta.get("omniChatUrl"), str) else None
    for extra in _extras(meta, url if url and url not in prose else None):
        if len(text) + len(extra) <= budget:
            text += extra
    text = _cut(text, budget)  # only bites when even the header line does not fit
    summary = f"{n:,} {_plural(n, 'row')}, {len(columns)} {_plural(len(columns), 'column')}"
    if len(rows) < n:
        summary += f" (first {len(rows):,} shown)" if rows else " (none shown)"
    if total is not None and total > n:
        summary += f"; Omni found {total:,}"
    return ShapedResult(
        content=parts.content(text),
        is_error=False,
        summary=summary,
        artifact_id=artifact.id,
        row_count=n,
        total_row_count=total,
        shown_rows=len(rows),
        columns=list(columns),
        chart=chart,
        omni_chat_url=url,
    )


async def _shape_text(
    parts: _Parts, structured: dict[str, Any] | None, *, owner: str, tool: str, budget: int, artifacts: ArtifactStore
) -> ShapedResult:
    """Text that fits goes as is; longer text is cut at a line boundary, kept, and the note names its id."""
    full = "\n\n".join(t for t in parts.texts if t) or _json_text(structured) or f"({tool} returned no content)"
    if len(full) <= budget:
        return ShapedResult(content=parts.content(full), is_error=False, summary=_text_summary(full, len(full)))
    artifact = Artifact(owner=owner, tool=tool, text=full)
    await artifacts.put(artifact)
    total_lines = artifact.unit_count()
    worst = _text_note(artifact.id, total_lines, total_lines, len(full), len(full))
    lines, _ = _take(artifact.unit_texts(0, total_lines), budget - len(worst) - 2)
    shown = "".join(lines)
    text = shown + "\n\n" + _text_note(artifact.id, len(lines), total_lines, len(shown), len(full))
    return ShapedResult(
        content=parts.content(text),
        is_error=False,
        summary=_text_summary(full, len(shown)),
        artifact_id=artifact.id,
    )


def _shape_error(parts: _Parts, structured: dict[str, Any] | None, budget: int) -> ShapedResult:
    """An error goes back as an error with its text (cut to the budget, never stored)."""
    error = structured.get("error") if isinstance(structured, dict) else None
    text = "\n\n".join(t for t in parts.texts if t) or _json_text(error or structured) or "The tool call failed."
    text = _cut(text, budget)
    first_line = text.strip().splitlines()[0] if text.strip() else "failed"
    summary = "error: " + (first_line if len(first_line) <= 200 else first_line[:199] + "…")
    return ShapedResult(content=parts.content(text), is_error=True, summary=summary)


# --- small helpers -------------------------------------------------------------------------------------


def _take(units: Iterator[str], allowance: int) -> tuple[list[str], bool]:
    """The first units whose total length fits `allowance`, and whether every unit fitted."""
    taken: list[str] = []
    used = 0
    for unit in units:
        if used + len(unit) > allowance:
            return taken, False
        taken.append(unit)
        used += len(unit)
    return taken, True


def _cut(text: str, limit: int) -> str:
    """`text` if it fits `limit` characters, else its start, cut at a line boundary where one is near, marked."""
    if len(text) <= limit:
        return text
    room = max(limit - len(_CUT_MARK), 0)
    newline = text.rfind("\n", 0, room + 1)
    end = newline if newline >= room // 2 else room
    return (text[:end] + _CUT_MARK)[:limit]


def _table_note(result_id: str, shown: int, total: int) -> str:
    rows = f"Showing rows 1-{shown:,} of {total:,}." if shown else f"No row of the {total:,} fits in this preview."
    return (
        f'{rows} The full result is kept as result_id "{result_id}": call '
        f'read_result(result_id="{result_id}", offset={shown}, limit={DEFAULT_READ_LIMIT}) for more rows '
        f"(up to {MAX_READ_LIMIT} a call)."
    )


def _text_note(result_id: str, shown_lines: int, total_lines: int, shown_chars: int, total_chars: int) -> str:
    return (
        f"[Cut after line {shown_lines:,} of {total_lines:,} ({shown_chars:,} of {total_chars:,} characters shown). "
        f'The full text is kept as result_id "{result_id}": call read_result(result_id="{result_id}", '
        f"offset={shown_lines}) for the rest.]"
    )


def _page_trailer(unit: str, offset: int, end: int, total: int, cut: bool) -> str:
    if end > offset:
        where = f"{unit.capitalize()}s {offset + 1:,}-{end:,} of {total:,} (offset {offset})"
    else:
        where = f"No {unit}s"
    if cut:
        where += f"; the {unit} is longer than the budget and was cut"
    nxt = f"next_offset={end}" if end < total else "this is the end of the result"
    return f"[{where}; {nxt}.]"


def _extras(meta: dict[str, Any], url: str | None) -> Iterator[str]:
    """The link, the query and its SQL, in that order: each added only if it fits whole."""
    if url:
        yield f"\nOpen in Omni: {url}"
    if isinstance(meta.get("query"), dict):
        yield "\nQuery: " + json.dumps(meta["query"], separators=(",", ":"), ensure_ascii=False)
    if isinstance(meta.get("sql"), str) and meta["sql"]:
        yield f"\nSQL:\n{meta['sql']}"


def _text_summary(full: str, shown: int) -> str:
    summary = f"{len(full):,} characters of text"
    return summary + (f" (first {shown:,} shown)" if shown < len(full) else "")


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str) if value else ""


def _int_or_none(value: Any) -> int | None:
    return value if _is_int(value) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _count(n: int, word: str) -> str:
    return f"{n:,} {_plural(n, word)}"
