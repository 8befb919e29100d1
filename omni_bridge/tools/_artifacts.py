"""Artifacts: the full result of a tool call, kept beside the conversation while the model sees a budget.

The model gets a budgeted preview of a large result; the whole table is kept here under an id, so the
bridge-local `read_result` tool, tables and downloads can reach every row. An artifact belongs to one Omni
user (`owner`): asking for it as anyone else finds nothing.

An artifact is read in pages of *units*: rows for a table, lines for text (a line longer than
`TEXT_LINE_MAX_CHARS` counts as several). Where each unit starts and ends in the stored string is indexed
once, in one pass of the stdlib `csv` reader over the string (no copy of it), so any page is a few slices:
paging a 50,000-row result costs no re-parsing.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = [
    "TEXT_LINE_MAX_CHARS",
    "Artifact",
    "ArtifactStore",
    "CsvScan",
    "MemoryArtifactStore",
    "new_artifact_id",
    "rows_to_csv",
    "scan_csv",
]

TEXT_LINE_MAX_CHARS = 1000
"""A text artifact's longer lines are paged in pieces of this many characters (minified JSON is one line)."""


def new_artifact_id() -> str:
    return "res_" + uuid.uuid4().hex[:20]


class Artifact(BaseModel):
    """One tool result in full."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_artifact_id)
    owner: str
    """The Omni user id the result was produced for."""
    tool: str
    columns: list[str] = Field(default_factory=list)
    """The table's header, when the result is a table."""
    csv: str = ""
    """The whole table as CSV (header line included), when the result is a table."""
    row_count: int = 0
    """Rows in `csv`."""
    total_row_count: int | None = None
    """Rows Omni said the query had; more than `row_count` when Omni itself truncated."""
    text: str = ""
    """The result's text, when it is not a table."""
    data: dict[str, Any] = Field(default_factory=dict)
    """The rest of the structured result (query, SQL, topic, chat link)."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    _spans: array[int] | None = PrivateAttr(default=None)
    """Start and end offsets of every unit (for a table, the header record first), built on first use."""

    def size_bytes(self) -> int:
        """The stored strings' size; the row index (16 bytes a row, built lazily) is not counted."""
        return len(self.csv) + len(self.text) + sys.getsizeof(self.data)

    @classmethod
    def from_csv(
        cls,
        csv_text: str,
        *,
        owner: str,
        tool: str,
        total_row_count: int | None = None,
        data: dict[str, Any] | None = None,
        keep_rows: int = 0,
    ) -> tuple[Artifact, list[list[str]]]:
        """A table artifact, indexed in the same pass that counts its rows.

        Args:
            csv_text: The whole table as CSV, header first. It is kept as is, not copied.
            owner: The Omni user id the result was produced for.
            tool: The tool that produced it.
            total_row_count: Rows Omni said the query had, when it said so.
            data: The rest of the structured result.
            keep_rows: How many of the first data rows to return parsed (e.g. for a chart).

        Returns:
            The artifact and its first `keep_rows` rows as cells.

        Raises:
            ValueError: `csv_text` has no header record.
            csv.Error: `csv_text` is not CSV the stdlib reader accepts (e.g. a cell over its size limit).
        """
        scan = scan_csv(csv_text, keep_rows=keep_rows)
        artifact = cls(
            owner=owner,
            tool=tool,
            columns=scan.columns,
            csv=csv_text,
            row_count=scan.row_count,
            total_row_count=total_row_count,
            data=data or {},
        )
        artifact._spans = scan.spans
        return artifact, scan.head

    @property
    def is_table(self) -> bool:
        """Whether the artifact is a table (paged by rows) rather than text (paged by lines)."""
        return bool(self.columns)

    def unit_count(self) -> int:
        """Rows of a table, lines of a text (see `TEXT_LINE_MAX_CHARS`)."""
        return len(self._index()) // 2 - (1 if self.is_table else 0)

    def header_line(self) -> str:
        """A table's CSV header record, ending in one `\\n`; empty for text."""
        if not self.is_table:
            return ""
        spans = self._index()
        return _record(self.csv[spans[0] : spans[1]])

    def unit_texts(self, start: int, stop: int) -> Iterator[str]:
        """The units `[start, stop)` as they are stored.

        Table rows come as CSV records ending in one `\\n` (cells with commas, quotes and newlines stay
        quoted); text lines come exactly as stored, so joining all of them gives the text back.
        """
        spans = self._index()
        first = 1 if self.is_table else 0
        stop = min(stop, self.unit_count())
        for unit in range(max(start, 0), stop):
            begin, end = spans[2 * (unit + first)], spans[2 * (unit + first) + 1]
            yield _record(self.csv[begin:end]) if self.is_table else self.text[begin:end]

    def rows(self, start: int, stop: int) -> list[list[str]]:
        """A table's rows `[start, stop)` as cells."""
        return list(csv.reader(io.StringIO("".join(self.unit_texts(start, stop)), newline="")))

    def _index(self) -> array[int]:
        if self._spans is None:
            self._spans = scan_csv(self.csv).spans if self.is_table else _text_spans(self.text)
        return self._spans


@dataclass(frozen=True, slots=True)
class CsvScan:
    """What one pass over a CSV string found."""

    columns: list[str]
    """The header record."""
    row_count: int
    """Data records (blank lines are not records)."""
    spans: array[int]
    """Start and end offset of every record, header first: `[start0, end0, start1, end1, ...]`."""
    head: list[list[str]]
    """The first data rows, as many as asked for."""


def scan_csv(text: str, *, keep_rows: int = 0) -> CsvScan:
    """Read a CSV string once: its header, its row count, where each record lies, and its first rows.

    Args:
        text: CSV with a header record; `\\n` or `\\r\\n` line endings; cells may hold quoted commas, quotes
            and newlines.
        keep_rows: How many data rows to return parsed in `head`.

    Raises:
        ValueError: No header record (empty text).
        csv.Error: The stdlib reader refuses the text.
    """
    lines = _LineReader(text)
    spans: array[int] = array("q")
    head: list[list[str]] = []
    columns: list[str] | None = None
    start = 0
    for record in csv.reader(lines):
        end = lines.pos  # the reader has consumed exactly this record's lines
        if record:
            if columns is None:
                columns = record
            elif len(head) < keep_rows:
                head.append(record)
            spans.append(start)
            spans.append(end)
        start = end
    if columns is None:
        raise ValueError("the CSV has no header record")
    return CsvScan(columns, len(spans) // 2 - 1, spans, head)


def rows_to_csv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A CSV string (header first, `\\n` line endings) for rows of cells; `None` becomes an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def csv_cell(value: object) -> str:
    """One JSON value as a CSV cell: empty for null, `true`/`false`, compact JSON for objects and lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class _LineReader:
    """Lines of a string, each with its line ending, without splitting the whole string up front."""

    __slots__ = ("_text", "pos")

    def __init__(self, text: str) -> None:
        self._text = text
        self.pos = 0
        """Where the next line starts."""

    def __iter__(self) -> _LineReader:
        return self

    def __next__(self) -> str:
        start = self.pos
        if start >= len(self._text):
            raise StopIteration
        newline = self._text.find("\n", start)
        self.pos = len(self._text) if newline == -1 else newline + 1
        return self._text[start : self.pos]


def _text_spans(text: str) -> array[int]:
    spans: array[int] = array("q")
    start = 0
    while start < len(text):
        newline = text.find("\n", start, start + TEXT_LINE_MAX_CHARS)
        end = min(start + TEXT_LINE_MAX_CHARS if newline == -1 else newline + 1, len(text))
        spans.append(start)
        spans.append(end)
        start = end
    return spans


def _record(raw: str) -> str:
    return raw.rstrip("\r\n") + "\n"


class ArtifactStore(Protocol):
    """Where artifacts live. The memory store is the default; conversation stores can persist them."""

    async def put(self, artifact: Artifact) -> None: ...

    async def get(self, artifact_id: str, *, owner: str) -> Artifact | None:
        """The artifact, or `None` when it does not exist or belongs to another owner."""
        ...


class MemoryArtifactStore:
    """Artifacts in memory, least recently used dropped first once `max_bytes` is passed."""

    def __init__(self, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, Artifact] = OrderedDict()

    def __repr__(self) -> str:
        return f"<MemoryArtifactStore artifacts={len(self._items)} bytes={self._bytes}>"

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, artifact: Artifact) -> None:
        old = self._items.pop(artifact.id, None)
        if old is not None:
            self._bytes -= old.size_bytes()
        self._items[artifact.id] = artifact
        self._bytes += artifact.size_bytes()
        while self._bytes > self._max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.size_bytes()

    async def get(self, artifact_id: str, *, owner: str) -> Artifact | None:
        artifact = self._items.get(artifact_id)
        if artifact is None or artifact.owner != owner:
            return None
        self._items.move_to_end(artifact_id)
        return artifact
