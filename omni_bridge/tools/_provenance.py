"""Provenance: the query behind each number of an answer, read from the tool and job results that made it.

"Total sales last month: 80,360.93" is only as good as what it leaves out: which month, which filters, and that
the user sees one region's rows. So every query result an answer used yields a `QueryProvenance`: topic, fields,
filters as Omni resolved them (the dates "last month" became), the row-level security applied when the server
says so, row count, whether rows were cut (a preview that could not be completed, or the query's row limit), and
the link to Omni. The engines gather them into the answer's `provenance` content part.

Where the facts come from: Omni's `generate_query` results carry `query` (`fields`, `filters`, `limit`, topic) and
`totalRowCount`; `getData` results carry `query.filters` too (a third-party report advises showing them before
quoting a number). Filter values are shown as they came: `{"between": [a, b]}` as `a to b`, `{"is": [...]}` and
`{"not": [...]}` as lists, a string (e.g. Omni's own filter expressions) as is, anything else as compact JSON.
`accessFilters` is the sandbox's (Omni documents no field saying which row-level security applied).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, computed_field

from omni_bridge.tools._preview import Completeness

__all__ = ["QueryProvenance", "partial_notice", "query_provenance"]


class QueryProvenance(BaseModel):
    """How one query behind an answer was made."""

    model_config = ConfigDict(frozen=True)

    tool: str
    """The tool (or `omni_ai_job`) whose result it was."""
    topic: str | None = None
    model_id: str | None = None
    fields: list[str] = Field(default_factory=list)
    filters: dict[str, str] = Field(default_factory=dict)
    """Each filter as resolved, e.g. `{"orders.created_at": "2026-10-01 to 2026-10-31"}`."""
    access_filters: dict[str, str] = Field(default_factory=dict)
    """Row-level security applied for the user, when the server says (e.g. `{"customers.region": "West"}`)."""
    row_count: NonNegativeInt | None = None
    """Rows in the table the answer used."""
    total_row_count: NonNegativeInt | None = None
    """Rows the query had, when known."""
    rows_cut: bool = False
    """The answer used fewer rows than the query had."""
    cut_reason: Literal["preview", "row_limit"] | None = None
    """`preview`: Omni sent a preview and the full rows could not be fetched; `row_limit`: the query's limit."""
    limit: int | None = None
    omni_url: str | None = None
    result_id: str | None = None
    """The artifact holding the table, for `read_result` and downloads."""

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way to serialise a property
    @property
    def summary(self) -> str:
        """`line()`, serialised with the rest, so every consumer shows the same words."""
        return self.line()

    def line(self, *, link: bool = True) -> str:
        """The provenance as one line of text, e.g. for a console: topic, fields, filters, rows, link.

        `link=False` leaves the link out, for a view that shows it on a line of its own.
        """
        parts = [f"topic {self.topic}" if self.topic else self.tool]
        if self.fields:
            parts.append("fields " + ", ".join(self.fields))
        parts.append(
            "filters " + "; ".join(f"{k} {v}" for k, v in self.filters.items()) if self.filters else "no filters"
        )
        if self.access_filters:
            parts.append("your access: " + "; ".join(f"{k} {v}" for k, v in self.access_filters.items()))
        parts.append(self.rows_text())
        if self.omni_url and link:
            parts.append(self.omni_url)
        return " · ".join(parts)

    def rows_text(self) -> str:
        rows = self.row_count
        if rows is None:
            return "rows unknown"
        text = f"{rows:,} {'row' if rows == 1 else 'rows'}"
        if self.rows_cut and self.total_row_count is not None:
            text += f" of {self.total_row_count:,}"
        if self.cut_reason == "preview":
            text += " (PARTIAL: Omni's preview; the full rows could not be fetched)"
        elif self.cut_reason == "row_limit":
            text += " (cut at the row limit)"
        return text


def query_provenance(
    tool: str,
    meta: Mapping[str, Any],
    *,
    row_count: int | None,
    completeness: Completeness | None = None,
    result_id: str | None = None,
    omni_url: str | None = None,
) -> QueryProvenance | None:
    """The provenance of one query result, from what came with its table; `None` when nothing says a query ran.

    Args:
        tool: the tool (or job) that returned it.
        meta: the fields around the table: `query`, `topicName`/`topic`, `modelId`, `fields`, `totalRowCount`,
            `accessFilters`, `omniChatUrl`.
        row_count: rows in the table kept.
        completeness: what `complete_preview` found (a preview, fetched again or not).
        result_id: the artifact holding the table.
        omni_url: the link to the answer in Omni, when it is not in `meta`.
    """
    raw = meta.get("query")
    query: dict[str, Any] = raw if isinstance(raw, dict) else {}
    topic = _text(meta.get("topicName")) or _text(meta.get("topic")) or _text(query.get("topicName"))
    if not query and not topic:
        return None
    fields = query.get("fields") or meta.get("fields") or []
    total = meta.get("totalRowCount")
    total = total if _is_count(total) else None
    cut_reason: Literal["preview", "row_limit"] | None = None
    if completeness is not None and completeness.is_preview:
        total = completeness.total_rows if completeness.total_rows is not None else total
        cut_reason = "preview" if completeness.partial else None
    elif total is not None and row_count is not None and total > row_count:
        cut_reason = "row_limit"
    limit = query.get("limit")
    return QueryProvenance(
        tool=tool,
        topic=topic,
        model_id=_text(query.get("modelId")) or _text(meta.get("modelId")),
        fields=[str(f) for f in fields if isinstance(f, str)],
        filters=_filters(query.get("filters")),
        access_filters=_filters(meta.get("accessFilters")),
        row_count=row_count,
        total_row_count=total,
        rows_cut=cut_reason is not None,
        cut_reason=cut_reason,
        limit=limit if _is_count(limit) else None,
        omni_url=_text(meta.get("omniChatUrl")) or omni_url,
        result_id=result_id,
    )


def partial_notice(queries: Iterable[QueryProvenance]) -> str | None:
    """A sentence for the answer when a table behind it is only Omni's preview; `None` when none is."""
    cut = [q for q in queries if q.cut_reason == "preview"]
    if not cut:
        return None
    rows = "; ".join(q.rows_text().split(" (")[0] for q in cut)
    return (
        f"Note: the data behind this answer is partial: Omni sent only a preview ({rows}) and the full rows "
        "could not be fetched, so figures computed from the table may be incomplete."
    )


def _filters(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(name): _filter_text(spec) for name, spec in value.items()}


def _filter_text(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return ", ".join(str(v) for v in spec)
    if isinstance(spec, dict) and len(spec) == 1:
        ((operator, values),) = spec.items()
        if operator == "between" and isinstance(values, list) and len(values) == 2:
            return f"{values[0]} to {values[1]}"
        if operator in ("is", "in") and isinstance(values, list):
            return ", ".join(str(v) for v in values)
        if operator == "not" and isinstance(values, list):
            return "not " + ", ".join(str(v) for v in values)
    return json.dumps(spec, separators=(",", ":"), ensure_ascii=False, default=str)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
