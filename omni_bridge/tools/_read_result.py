"""The bridge-local `read_result` tool: pages of a kept result for the model, within the token budget.

A result too large for the model's preview is kept whole as an `Artifact`; the preview names its `result_id`, and
`read_result(result_id, offset, limit)` returns the rows (lines, for text) after it, as CSV with the header line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from omni_bridge.tools._artifacts import ArtifactStore
from omni_bridge.tools._budget import (
    CHARS_PER_TOKEN,
    DEFAULT_BUDGET_TOKENS,
    FENCE_CLOSE,
    FENCE_OPEN,
    MIN_BUDGET_TOKENS,
    cut_to_fit,
    take,
)

__all__ = [
    "DEFAULT_READ_LIMIT",
    "MAX_READ_LIMIT",
    "READ_RESULT_TOOL",
    "InvalidReadArguments",
    "ReadResult",
    "ReadResultError",
    "ResultNotFound",
    "is_int",
    "read_result",
]

DEFAULT_READ_LIMIT = 200
MAX_READ_LIMIT = 1000

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
    if not is_int(offset) or offset < 0:
        raise InvalidReadArguments(f"offset must be an integer of 0 or more (rows count from 0); got {offset!r}")
    if not is_int(limit) or not 1 <= limit <= MAX_READ_LIMIT:
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
    opening, closing = (FENCE_OPEN + artifact.header_line(), FENCE_CLOSE) if artifact.is_table else ("", "")
    worst_trailer = _page_trailer(unit, offset, total, total, cut=True)
    allowance = budget - len(opening) - len(closing) - len(worst_trailer) - 1
    chunks, _ = take(artifact.unit_texts(offset, offset + limit), allowance)
    cut = False
    if not chunks:  # a single row longer than the whole budget: show its start rather than stall
        first = next(artifact.unit_texts(offset, offset + 1))
        chunks, cut = [cut_to_fit(first, max(allowance, 0)) + ("\n" if artifact.is_table else "")], True
    end = offset + len(chunks)
    next_offset = end if end < total else None
    trailer = _page_trailer(unit, offset, end, total, cut)
    if artifact.is_table:
        text = opening + "".join(chunks) + closing + "\n" + trailer
    else:  # where the page lies goes first, so the lines after it are exactly the stored ones
        text = trailer + "\n" + "".join(chunks)
    return ReadResult(artifact.id, kind, cut_to_fit(text, budget), offset, len(chunks), total, next_offset)


def _page_trailer(unit: str, offset: int, end: int, total: int, cut: bool) -> str:
    if end > offset:
        where = f"{unit.capitalize()}s {offset + 1:,}-{end:,} of {total:,} (offset {offset})"
    else:
        where = f"No {unit}s"
    if cut:
        where += f"; the {unit} is longer than the budget and was cut"
    nxt = f"next_offset={end}" if end < total else "this is the end of the result"
    return f"[{where}; {nxt}.]"


def is_int(value: Any) -> bool:
    """`value` is an `int` and not a `bool`."""
    return isinstance(value, int) and not isinstance(value, bool)
