"""Omni's truncated previews: label rows taken out, the full rows fetched again, or the table marked partial.

Omni's AI job results (and `checkStatus` results, which carry them) give a large result as a preview: the CSV
holds one-column label rows `FIRST`, `SAMPLED … FROM MIDDLE` and `LAST` between the data rows, and
`csvResultWasTruncated` is true. Seen live by an independent benchmark; Omni documents neither the labels nor
how many rows each section holds, so a label is any one-cell row that reads `FIRST`, `LAST` or `SAMPLED … FROM
MIDDLE` (any case) in a table of more columns, or in a one-column table flagged as truncated.

A preview is worse than an error when it passes for the table: its sampled middle looks like data, and sums
over it are wrong. So label rows never become data rows or chart points, and the preview is never kept as the
result: the returned `query` is run again (`POST /api/v1/query/run`) for the same user, and the full rows are
kept instead. When that cannot be done (no query, no REST client, Omni refuses or times out), the table is kept
marked partial and every consumer is told so: `Completeness.note` says which rows it holds, of how many.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omni_bridge.exceptions import OmniError
from omni_bridge.tools._artifacts import rows_to_csv
from omni_bridge.tools._rest_query import QueryRows

__all__ = ["Completeness", "PreviewSection", "QueryRerun", "complete_preview", "split_preview"]

log = logging.getLogger("omni_bridge.tools")

QueryRerun = Callable[[Mapping[str, Any], Sequence[str]], Awaitable[QueryRows]]
"""Runs a returned query again for the user the result belongs to: `(query, header) -> rows`."""

_LABEL = re.compile(r"FIRST|LAST|SAMPLED\b.*\bFROM\s+MIDDLE", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PreviewSection:
    """One section of a preview: its label as Omni wrote it, and how many data rows followed it."""

    label: str
    rows: int

    def describe(self) -> str:
        word = self.label.split()[0].upper()
        rows = f"{self.rows:,} {'row' if self.rows == 1 else 'rows'}"
        if word == "FIRST":
            return f"the first {rows}"
        if word == "LAST":
            return f"the last {rows}"
        return f"{rows} sampled from the middle"


@dataclass(frozen=True, slots=True)
class Completeness:
    """How much of a query's rows a kept table holds."""

    sections: tuple[PreviewSection, ...] = ()
    """The preview's sections, when Omni sent a preview (empty otherwise)."""
    preview_rows: int = 0
    """Data rows in the preview."""
    total_rows: int | None = None
    """Rows the query has: Omni's `totalRowCount`, or the rows fetched again."""
    refetched: bool = False
    """The full rows were fetched again and replace the preview."""
    refetch_error: str | None = None
    """Why the full rows could not be fetched, for a preview that stays partial."""

    @property
    def is_preview(self) -> bool:
        return bool(self.sections)

    @property
    def partial(self) -> bool:
        """The kept table is a preview, not the whole result."""
        return self.is_preview and not self.refetched

    def preview_text(self) -> str:
        """E.g. `the first 100 rows, 100 rows sampled from the middle and the last 100 rows (300 of 862 rows)`."""
        parts = [section.describe() for section in self.sections]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        of = f" of {self.total_rows:,}" if self.total_rows is not None else ""
        return f"{listed} ({self.preview_rows:,}{of} rows)"

    def note(self) -> str | None:
        """What to tell the model and the user about the table; `None` when it is simply whole."""
        if not self.is_preview:
            return None
        if self.refetched:
            return (
                f"Omni sent only a preview ({self.preview_text()}); the bridge ran the query again and this is "
                f"the full result of {self.total_rows:,} rows."
            )
        return (
            f"PARTIAL TABLE: Omni sent only a preview, not the whole result: {self.preview_text()}. "
            f"Fetching the full rows failed ({self.refetch_error}). Do not present these rows as the whole table "
            "or total them: say the table is partial."
        )


def split_preview(csv_text: str, *, truncated: bool) -> tuple[str, tuple[PreviewSection, ...]]:
    """The CSV without its label rows, and the sections they marked; the text unchanged when it has none.

    Args:
        csv_text: a result's CSV, header first.
        truncated: Omni flagged the result as truncated (`csvResultWasTruncated`): only then is a label-like row
            of a one-column table taken for a label.

    Raises:
        csv.Error: the stdlib reader refuses the text.
    """
    records = [row for row in csv.reader(io.StringIO(csv_text, newline="")) if row]
    if not records:
        return csv_text, ()
    header, rows = records[0], records[1:]
    may_label = len(header) > 1 or truncated
    sections: list[PreviewSection] = []
    data: list[list[str]] = []
    for row in rows:
        if may_label and len(row) == 1 and _LABEL.fullmatch(row[0].strip()):
            sections.append(PreviewSection(row[0].strip(), 0))
        else:
            data.append(row)
            if sections:
                sections[-1] = PreviewSection(sections[-1].label, sections[-1].rows + 1)
    if not sections:
        return csv_text, ()
    return rows_to_csv(header, data), tuple(sections)


async def complete_preview(
    csv_text: str, meta: Mapping[str, Any], rerun: QueryRerun | None
) -> tuple[str, Completeness]:
    """The table to keep for a result's CSV: the full rows when it was a preview and they can be fetched.

    Args:
        csv_text: the CSV Omni sent.
        meta: what came with it: `csvResultWasTruncated` (or `truncated`), `totalRowCount`, `query`.
        rerun: runs the query again for the same user; `None` when there is no way to.

    Returns:
        The CSV to keep (the full rows, else the preview without its label rows) and what it holds.

    Raises:
        csv.Error: the stdlib reader refuses the text.
    """
    truncated = meta.get("csvResultWasTruncated") is True or meta.get("truncated") is True
    total = meta.get("totalRowCount")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    table, sections = split_preview(csv_text, truncated=truncated)
    if not sections:
        return csv_text, Completeness(total_rows=total)
    preview_rows = sum(section.rows for section in sections)
    query = meta.get("query")
    header = next(csv.reader(io.StringIO(table, newline="")), [])
    if rerun is None:
        error = "there is no Omni REST client to run the query again"
    elif not isinstance(query, dict) or not query:
        error = "the result does not include the query to run again"
    else:
        try:
            rows = await rerun(query, header)
        except OmniError as exc:
            log.warning("running a previewed query again failed: %s", exc)
            error = str(exc)
        else:
            if rows.row_count >= preview_rows:
                return rows.csv, Completeness(sections, preview_rows, rows.row_count, refetched=True)
            error = f"running the query again gave {rows.row_count:,} rows, fewer than the preview's {preview_rows:,}"
    return table, Completeness(sections, preview_rows, total, refetch_error=error)
