"""`shape_result`: one MCP tool result shaped three ways: budgeted text for Claude, the artifact, and a chart.

A 50,000-row answer pasted into the conversation costs a fortune, crowds out the question and fails the request
outright past the context window. So the model sees a preview that fits a token budget (a header line, the CSV
header and as many first rows as fit, and a note naming the `result_id`) while the whole result is kept as an
`Artifact`, and the bridge-local `read_result` tool pages through the rest. Images are passed through and not
counted against the budget.

A table that is Omni's truncated preview (label rows `FIRST` / `SAMPLED … FROM MIDDLE` / `LAST`) is completed first
(`complete_preview`): its query is run again for the same user and the full rows are kept; when that fails, the
label rows are still taken out, the text says the table is partial, and no chart is drawn from it.

A result without a table is text, budgeted the same way (kept only when it was cut); an error result passes
through as an error, cut to the budget if it must be, and is never kept.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omni_bridge.tools._artifacts import Artifact, ArtifactStore
from omni_bridge.tools._budget import (
    CHARS_PER_TOKEN,
    DEFAULT_BUDGET_TOKENS,
    FENCE_CLOSE,
    FENCE_OPEN,
    MIN_BUDGET_TOKENS,
    cut_to_fit,
    take,
)
from omni_bridge.tools._chart import MAX_CHART_POINTS, DataChart, derive_chart
from omni_bridge.tools._preview import Completeness, QueryRerun, complete_preview
from omni_bridge.tools._provenance import QueryProvenance, query_provenance
from omni_bridge.tools._read_result import DEFAULT_READ_LIMIT, MAX_READ_LIMIT
from omni_bridge.tools._result_content import FoundTable, ResultParts, find_table

if TYPE_CHECKING:
    import mcp.types as types  # in annotations only: `mcp` is imported when a session opens

__all__ = ["ShapedResult", "shape_result"]

_PROSE_SHARE = 4
"""What a server says around a table (a summary, a message) gets at most 1/4 of the budget."""


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
    partial: bool = False
    """The table is Omni's preview, not the whole result (the full rows could not be fetched)."""
    provenance: QueryProvenance | None = None
    """The query behind the table, when the result says which query ran."""

    @property
    def text(self) -> str:
        """The text the model sees (all text blocks)."""
        return "\n\n".join(block["text"] for block in self.content if block["type"] == "text")


async def shape_result(
    result: types.CallToolResult,
    *,
    tool: str,
    owner: str,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    artifacts: ArtifactStore,
    rerun: QueryRerun | None = None,
) -> ShapedResult:
    """Shape one MCP tool result for Claude, keep it in full, and chart it when it is a chartable table.

    Args:
        result: What the MCP server returned.
        tool: The tool's name (kept with the artifact, shown in the preview's first line).
        owner: The Omni user the call ran as; only they can `read_result` the artifact.
        budget_tokens: The most the text for the model may cost, estimated as characters / 4.
        artifacts: Where tables and long texts are kept.
        rerun: Runs a previewed result's query again for `owner`, for its full rows (`None`: it stays partial).

    Returns:
        The shaped result. Every table is stored as an artifact (so charts and downloads can use it); text is
        stored only when it was cut; errors are never stored.

    Raises:
        ValueError: `budget_tokens` is below `MIN_BUDGET_TOKENS`.
    """
    if budget_tokens < MIN_BUDGET_TOKENS:
        raise ValueError(f"budget_tokens must be at least {MIN_BUDGET_TOKENS}, got {budget_tokens}")
    budget = budget_tokens * CHARS_PER_TOKEN
    parts = ResultParts.of(result.content)
    structured = result.structured_content
    if result.is_error:
        return _shape_error(parts, structured, budget)
    found = find_table(structured, parts)
    if found is not None:
        try:
            table, completeness = await complete_preview(found.csv, found.meta, rerun)
            artifact, head = Artifact.from_csv(
                table,
                owner=owner,
                tool=tool,
                total_row_count=completeness.total_rows,
                data={**found.meta, "source": found.source, "partial": completeness.partial},
                keep_rows=MAX_CHART_POINTS + 1,
            )
        except (ValueError, csv.Error):
            found = None  # not CSV after all: show it as the text it is
        else:
            await artifacts.put(artifact)
            chartable = artifact.row_count <= MAX_CHART_POINTS and not completeness.partial
            chart = derive_chart(artifact.columns, head) if chartable else None
            return _shape_table(artifact, found, parts, chart, budget, completeness)
    return await _shape_text(parts, structured, owner=owner, tool=tool, budget=budget, artifacts=artifacts)


# --- the three shapes ----------------------------------------------------------------------------------


def _shape_table(
    artifact: Artifact,
    found: FoundTable,
    parts: ResultParts,
    chart: DataChart | None,
    budget: int,
    completeness: Completeness,
) -> ShapedResult:
    """Header line, server prose, CSV header and first rows, the note when rows are left out, then the extras."""
    n, columns, meta = artifact.row_count, artifact.columns, found.meta
    total = completeness.total_rows
    lead = f"{artifact.tool} returned {_count(n, 'row')} × {_count(len(columns), 'column')}"
    topic = meta.get("topicName") or meta.get("topic")
    if isinstance(topic, str) and topic:
        lead += f" from topic {topic}"
    preview_note = completeness.note()
    if preview_note is not None:
        lead += ". " + preview_note.rstrip(".")
    elif total is not None and total > n:
        lead += (
            f". Omni found {total:,} rows and returned only the first {n:,} (its row limit): ask a narrower "
            "question or a higher limit for the rest"
        )
    if found.others:
        lead += f" (the last of {found.others + 1} tables in the result)"
    lead += ".\n\n"
    prose = found.prose
    if prose:
        prose = cut_to_fit(prose, budget // _PROSE_SHARE) + "\n\n"
    opening = FENCE_OPEN + artifact.header_line()
    fixed = len(lead) + len(prose) + len(opening) + len(FENCE_CLOSE)
    if fixed + len(_table_note(artifact.id, n, n)) + 2 > budget:  # nothing but the essentials fits
        prose = ""
        fixed = len(lead) + len(opening) + len(FENCE_CLOSE)
    rows, complete = take(artifact.unit_texts(0, n), budget - fixed)
    note = ""
    if not complete:
        rows, _ = take(iter(rows), budget - fixed - len(_table_note(artifact.id, n, n)) - 2)
        note = "\n\n" + _table_note(artifact.id, len(rows), n)
    text = lead + prose + opening + "".join(rows) + FENCE_CLOSE + note
    url = meta.get("omniChatUrl") if isinstance(meta.get("omniChatUrl"), str) else None
    for extra in _extras(meta, url if url and url not in prose else None):
        if len(text) + len(extra) <= budget:
            text += extra
    text = cut_to_fit(text, budget)  # only bites when even the header line does not fit
    summary = f"{n:,} {_plural(n, 'row')}, {len(columns)} {_plural(len(columns), 'column')}"
    if len(rows) < n:
        summary += f" (first {len(rows):,} shown)" if rows else " (none shown)"
    if completeness.partial:
        summary += f"; PARTIAL preview of {total:,}" if total is not None else "; PARTIAL preview"
    elif total is not None and total > n:
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
        partial=completeness.partial,
        provenance=query_provenance(artifact.tool, meta, row_count=n, completeness=completeness, result_id=artifact.id),
    )


async def _shape_text(
    parts: ResultParts,
    structured: dict[str, Any] | None,
    *,
    owner: str,
    tool: str,
    budget: int,
    artifacts: ArtifactStore,
) -> ShapedResult:
    """Text that fits goes as is; longer text is cut at a line boundary, kept, and the note names its id."""
    full = "\n\n".join(t for t in parts.texts if t) or _json_text(structured) or f"({tool} returned no content)"
    if len(full) <= budget:
        return ShapedResult(content=parts.content(full), is_error=False, summary=_text_summary(full, len(full)))
    artifact = Artifact(owner=owner, tool=tool, text=full)
    await artifacts.put(artifact)
    total_lines = artifact.unit_count()
    worst = _text_note(artifact.id, total_lines, total_lines, len(full), len(full))
    lines, _ = take(artifact.unit_texts(0, total_lines), budget - len(worst) - 2)
    shown = "".join(lines)
    text = shown + "\n\n" + _text_note(artifact.id, len(lines), total_lines, len(shown), len(full))
    return ShapedResult(
        content=parts.content(text),
        is_error=False,
        summary=_text_summary(full, len(shown)),
        artifact_id=artifact.id,
    )


def _shape_error(parts: ResultParts, structured: dict[str, Any] | None, budget: int) -> ShapedResult:
    """An error goes back as an error with its text (cut to the budget, never stored)."""
    error = structured.get("error") if isinstance(structured, dict) else None
    text = "\n\n".join(t for t in parts.texts if t) or _json_text(error or structured) or "The tool call failed."
    text = cut_to_fit(text, budget)
    first_line = text.strip().splitlines()[0] if text.strip() else "failed"
    summary = "error: " + (first_line if len(first_line) <= 200 else first_line[:199] + "…")
    return ShapedResult(content=parts.content(text), is_error=True, summary=summary)


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


def _extras(meta: dict[str, Any], url: str | None) -> Iterator[str]:
    """The link and the query, in that order: each added only if it fits whole.

    Not the SQL: the query already says which fields, filters and sorts made the numbers, and the SQL would be
    about a third of a small result's tokens, written to the prompt cache on every query the model makes. It
    stays in the kept artifact.
    """
    if url:
        yield f"\nOpen in Omni: {url}"
    if isinstance(meta.get("query"), dict):
        yield "\nQuery: " + json.dumps(meta["query"], separators=(",", ":"), ensure_ascii=False)


def _text_summary(full: str, shown: int) -> str:
    summary = f"{len(full):,} characters of text"
    return summary + (f" (first {shown:,} shown)" if shown < len(full) else "")


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str) if value else ""


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _count(n: int, word: str) -> str:
    return f"{n:,} {_plural(n, word)}"
