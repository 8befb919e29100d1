"""The preview Omni's AI Jobs give of a large result: first rows, a sample from the middle, last rows.

Omni's job results carry `csvResult`, and for a large result it is a preview, not the table: live runs (an
independent benchmark of about 660 jobs) saw one-column label rows `FIRST`, `SAMPLED … FROM MIDDLE` and `LAST`
between the ordinary data rows, with `csvResultWasTruncated: true`; the full table comes from running the
returned `query` again through `/api/v1/query/run`. The sandbox does the same, so clients meet the shape here
first. How many rows each section holds, and the exact wording of the middle label, are not public: the sandbox
keeps the first and last `SECTION_ROWS` rows and `SECTION_ROWS` rows evenly spaced from the middle, under
`SAMPLED <n> ROWS FROM MIDDLE`, once a result has more than `PREVIEW_LIMIT` rows.

`getData` does not use this shape: Omni documents nothing of the kind for its single-shot tool (third-party
reports describe a row limit and `timed_out`), so it returns its rows whole up to the limit, as before.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass

from omni_bridge.sandbox._query import QueryResult

__all__ = ["PREVIEW_LIMIT", "SECTION_ROWS", "JobPreview", "job_preview"]

PREVIEW_LIMIT = 500
"""Results with more rows than this come as a preview in job results."""
SECTION_ROWS = 100
"""Rows in each of the three sections of a preview."""


@dataclass(frozen=True, slots=True)
class JobPreview:
    """What a job result's `generate_query` action says about its rows."""

    csv: str
    """`csvResult`: the whole table, or the labelled preview."""
    truncated: bool
    """`csvResultWasTruncated`: the preview was cut, or the query's row limit cut the rows."""


def job_preview(result: QueryResult) -> JobPreview:
    """`csvResult` and `csvResultWasTruncated` for one query's result, as Omni's AI Jobs give them."""
    rows = result.rows
    if len(rows) <= PREVIEW_LIMIT:
        return JobPreview(result.to_csv(), result.truncated)
    middle = rows[SECTION_ROWS:-SECTION_ROWS]
    step = len(middle) / SECTION_ROWS
    sections = (
        ("FIRST", rows[:SECTION_ROWS]),
        (f"SAMPLED {SECTION_ROWS} ROWS FROM MIDDLE", [middle[int(i * step)] for i in range(SECTION_ROWS)]),
        ("LAST", rows[-SECTION_ROWS:]),
    )
    out = io.StringIO()
    out.write(_rows_csv(result, []))  # the header line
    for label, section in sections:
        csv.writer(out, lineterminator="\n").writerow([label])
        out.write(_rows_csv(result, section).split("\n", 1)[1])
    return JobPreview(out.getvalue(), True)


def _rows_csv(result: QueryResult, rows: list[tuple[object, ...]]) -> str:
    """`rows` as CSV with the result's header and cell formatting."""
    return dataclasses.replace(result, rows=rows).to_csv()
