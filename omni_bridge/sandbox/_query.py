"""Running a semantic query against the demo data as one user, with Omni's data-access rules applied.

A `Query` is Omni's query shape (the body of `/api/v1/query/run`): `fields` (dimensions, then measures),
`filters`, `sorts` and `limit` on one topic. `run_query` enforces the topic's access grants, adds the topic's
access filters (row-level security) as bound parameters, then groups by the dimensions. User-supplied values only
ever reach SQLite as `?` parameters; the SQL text itself is assembled from the semantic model, which we wrote.

Errors, all raised by this module or `_nlq`:

```
SandboxQueryError            status 400 unless stated; one-line message except where noted
├── AccessDenied             403: the user lacks an access grant the topic requires
├── MissingUserAttribute     403: an access filter needs a user attribute the user does not have
├── UnknownField             400: a field, filter or sort names nothing in the topic
├── UnknownTopic             404: the query names a topic the model does not have
└── QuestionNotUnderstood    400: a question could not be mapped; the message lists what can be asked
```

`MissingUserAttribute` is a 403, not a 400: the request is well formed, but Omni refuses to run a topic with an
unresolvable access filter for that user, which is an access decision.

Filters, as JSON: `{"products.category": {"is": ["Jeans", "Shoes"]}}` (any of), `{"orders.status": {"not":
["cancelled"]}}` (none of) and `{"orders.created_at": {"between": ["2025-07-01", "2025-09-30"]}}` (inclusive
ISO dates, date dimensions only). One operator per filter.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from omni_bridge.sandbox._semantic import Dimension, Measure, Model, Topic, phrase_pattern

__all__ = [
    "MAX_LIMIT",
    "AccessDenied",
    "Filter",
    "MissingUserAttribute",
    "Query",
    "QueryResult",
    "QueryUser",
    "QuestionNotUnderstood",
    "SandboxQueryError",
    "Sort",
    "UnknownField",
    "UnknownTopic",
    "pick_topic",
    "run_query",
]

MAX_LIMIT = 50_000
GROUPS_ATTRIBUTE = "omni_user_groups"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SandboxQueryError(Exception):
    """A query or question the sandbox refuses; `status` is the HTTP status Omni would answer with."""

    status: int = 400


class AccessDenied(SandboxQueryError):
    """The user lacks an access grant that the topic requires."""

    status = 403


class MissingUserAttribute(SandboxQueryError):
    """A topic's access filter needs a user attribute that is not set for this user."""

    status = 403


class UnknownField(SandboxQueryError):
    """A field, filter or sort names nothing the topic exposes."""

    status = 400


class UnknownTopic(SandboxQueryError):
    """The query names a topic that the model does not have."""

    status = 404


class QuestionNotUnderstood(SandboxQueryError):
    """A plain-English question could not be turned into a query; the message lists what can be asked."""

    status = 400


@dataclass(frozen=True, slots=True)
class QueryUser:
    """Who a query runs as: user attributes, plus the groups behind the system attribute `omni_user_groups`."""

    user_id: str
    attributes: Mapping[str, str | list[str] | None]
    groups: tuple[str, ...] = ()

    def attribute_values(self, name: str) -> tuple[str, ...]:
        """The attribute's values as a tuple; empty when it is missing, `None`, or blank."""
        raw = self.attributes.get(name)
        values = [raw] if isinstance(raw, str) else list(raw or ())
        if name == GROUPS_ATTRIBUTE:
            values = [*self.groups, *values]
        return tuple(dict.fromkeys(v for v in values if v.strip()))


class Filter(BaseModel):
    """One filter on a dimension; exactly one of `is`, `not` or `between` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, serialize_by_alias=True)

    is_: list[str] | None = Field(default=None, alias="is")
    not_: list[str] | None = Field(default=None, alias="not")
    between: tuple[str, str] | None = None

    @classmethod
    def any_of(cls, values: Sequence[str]) -> Filter:
        """`{"is": values}`: the dimension equals one of `values`."""
        return cls.model_validate({"is": list(values)})

    @classmethod
    def none_of(cls, values: Sequence[str]) -> Filter:
        """`{"not": values}`: the dimension equals none of `values`."""
        return cls.model_validate({"not": list(values)})

    @classmethod
    def date_range(cls, start: str, end: str) -> Filter:
        """`{"between": [start, end]}`: inclusive ISO dates."""
        return cls.model_validate({"between": (start, end)})

    @model_validator(mode="after")
    def _one_operator(self) -> Filter:
        if sum(v is not None for v in (self.is_, self.not_, self.between)) != 1:
            raise ValueError("a filter needs exactly one of 'is', 'not' or 'between'")
        if self.between is not None:
            start, end = self.between
            if not (_ISO_DATE.match(start) and _ISO_DATE.match(end)) or start > end:
                raise ValueError("'between' takes two ISO dates, start <= end, e.g. ['2025-07-01', '2025-09-30']")
        return self


class Sort(BaseModel):
    """Order by one of the query's fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column_name: str
    sort_descending: bool = False


class Query(BaseModel):
    """A semantic query on one topic of one model, in Omni's shape (serialise with `to_omni_dict`).

    `table` is the topic's base view (Omni's `table`); `None` lets `run_query` fill it in. `limit=None` means
    the maximum, `MAX_LIMIT` rows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    topic: str
    table: str | None = None
    fields: list[str] = Field(min_length=1)
    filters: dict[str, Filter] = Field(default_factory=dict)
    sorts: list[Sort] = Field(default_factory=list)
    limit: int | None = Field(default=1000, ge=1, le=MAX_LIMIT)

    def to_omni_dict(self) -> dict[str, Any]:
        """The query as Omni's REST body: `{modelId, table, fields, filters, sorts, limit, topicName}`."""
        return {
            "modelId": self.model_id,
            "table": self.table or self.topic,
            "fields": list(self.fields),
            "filters": {name: f.model_dump(mode="json", exclude_none=True) for name, f in self.filters.items()},
            "sorts": [s.model_dump(mode="json") for s in self.sorts],
            "limit": self.limit,
            "topicName": self.topic,
        }

    @classmethod
    def from_omni_dict(cls, body: Mapping[str, Any]) -> Query:
        """Parse Omni's REST shape (`to_omni_dict`'s output); `topicName` defaults to `table`."""
        return cls(
            model_id=body["modelId"],
            topic=body.get("topicName") or body["table"],
            table=body.get("table"),
            fields=body["fields"],
            filters=body.get("filters") or {},
            sorts=body.get("sorts") or [],
            limit=body.get("limit", 1000),
        )


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query: `columns` are field names, `labels` their display names, in the same order."""

    columns: list[str]
    labels: list[str]
    rows: list[tuple[Any, ...]]
    total_row_count: int
    truncated: bool
    sql: str
    query: Query
    topic: str
    parameters: tuple[Any, ...] = field(default=())
    currency_columns: frozenset[str] = field(default=frozenset())
    access_filters: dict[str, list[str]] = field(default_factory=dict)
    """The row-level security applied for the user: field → the values its rows were limited to."""

    def to_csv(self) -> str:
        """The rows as CSV with a header of labels; currency to 2 decimals, no float noise, `\\n` line endings."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.labels)
        currency = [c in self.currency_columns for c in self.columns]
        for row in self.rows:
            writer.writerow([_format_cell(v, is_currency) for v, is_currency in zip(row, currency, strict=True)])
        return out.getvalue()

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by field name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def text_records(self) -> list[dict[str, str | None]]:
        """The rows as dicts keyed by field name, cells as `to_csv` writes them (`None` stays `None`)."""
        currency = [c in self.currency_columns for c in self.columns]
        return [
            {
                c: None if v is None else _format_cell(v, cur)
                for c, v, cur in zip(self.columns, row, currency, strict=True)
            }
            for row in self.rows
        ]


def run_query(conn: sqlite3.Connection, model: Model, query: Query, user: QueryUser) -> QueryResult:
    """Run `query` as `user`: check access grants, apply access filters, group, sort and limit.

    Raises:
        UnknownTopic: the topic is not in `model`.
        AccessDenied: the user lacks an access grant the topic requires.
        MissingUserAttribute: an access filter's user attribute is not set for the user.
        UnknownField: a field, filter or sort is not in the topic, or a filter does not fit its field.
    """
    if query.model_id not in (model.id, model.name):
        raise SandboxQueryError(f"Query is for model {query.model_id!r}, not {model.id!r} ({model.name})")
    try:
        topic = model.topic(query.topic)
    except KeyError as exc:
        raise UnknownTopic(exc.args[0]) from None
    if query.table not in (None, topic.base_view):
        raise UnknownField(f"Topic {topic.name!r} has base view {topic.base_view!r}, not table {query.table!r}")
    _check_access_grants(model, topic, user)
    dimensions, measures = _resolve_fields(topic, query.fields)

    where: list[str] = []
    params: list[Any] = []
    applied: dict[str, list[str]] = {}
    for access_filter in topic.access_filters:
        values = user.attribute_values(access_filter.user_attribute)
        if not values:
            raise MissingUserAttribute(
                f"Topic {topic.name!r} has an access filter on {access_filter.field!r} that needs user attribute "
                f"{access_filter.user_attribute!r}, which is not set for this user"
            )
        if any(v in access_filter.values_for_unfiltered for v in values):
            continue
        column = _dimension(topic, access_filter.field, "access filter").sql
        where.append(f"{column} IN ({', '.join('?' * len(values))})")
        params.extend(values)
        applied[access_filter.field] = list(values)
    for name, flt in query.filters.items():
        clause, bound = _filter_clause(_dimension(topic, name, "filter"), flt)
        where.append(clause)
        params.extend(bound)

    columns: list[Dimension | Measure] = [*dimensions, *measures]
    select = [f"{d.sql} AS c{i}" for i, d in enumerate(dimensions)]
    select += [
        f"ROUND({m.sql}, 2) AS c{i}" if m.value_type == "currency" else f"{m.sql} AS c{i}"
        for i, m in enumerate(measures, start=len(dimensions))
    ]
    sql = f"SELECT {', '.join(select)}\nFROM {topic.from_sql}"
    if where:
        sql += "\nWHERE " + "\n  AND ".join(where)
    if dimensions:
        sql += "\nGROUP BY " + ", ".join(str(i + 1) for i in range(len(dimensions)))
    # The window count sees every group before LIMIT, so one pass gives both the rows and `total_row_count`.
    sql = f"SELECT *, COUNT(*) OVER () AS total_row_count FROM (\n{sql}\n)"
    sql += "\nORDER BY " + ", ".join(_order_by(query, columns))
    sql += "\nLIMIT ?"
    limit = min(query.limit or MAX_LIMIT, MAX_LIMIT)
    fetched = conn.execute(sql, [*params, limit]).fetchall()
    rows = [tuple(r[:-1]) for r in fetched]
    total = int(fetched[0][-1]) if fetched else 0
    return QueryResult(
        columns=[c.name for c in columns],
        labels=[c.label for c in columns],
        rows=rows,
        total_row_count=total,
        truncated=total > len(rows),
        sql=sql,
        query=query if query.table else query.model_copy(update={"table": topic.base_view}),
        topic=topic.name,
        parameters=(*params, limit),
        currency_columns=frozenset(m.name for m in measures if m.value_type == "currency"),
        access_filters=applied,
    )


def pick_topic(model: Model, question: str) -> Topic:
    """The model's topic whose vocabulary best matches `question`, among `model.ai_chat_topics` when set.

    Longer phrases weigh more ("new customers" beats "customers"); a tie, or no match at all, goes to the
    topic listed first. Deterministic: the same question always picks the same topic.
    """
    candidates = [t for t in model.topics if model.ai_chat_topics is None or t.name in model.ai_chat_topics]
    if not candidates:
        raise UnknownTopic(f"Model {model.name!r} has no topic available to AI (ai_chat_topics is empty)")
    text = question.lower()
    best, best_score = candidates[0], 0
    for topic in candidates:
        score = vocabulary_score(topic, text)
        if score > best_score:
            best, best_score = topic, score
    return best


def vocabulary_score(topic: Topic, text: str) -> int:
    phrases = {p.lower() for m in topic.measures for p in (m.label, *m.synonyms)}
    phrases |= {p.lower() for d in topic.dimensions for p in (d.label, *d.synonyms)}
    score = 0
    # Longest first, blanking each match, so "new customers" is not also counted as "customers".
    for phrase in sorted(phrases, key=len, reverse=True):
        text, hits = phrase_pattern(phrase).subn(" ", text)
        score += hits * len(phrase.split()) ** 2
    return score


def _check_access_grants(model: Model, topic: Topic, user: QueryUser) -> None:
    for grant_name in topic.required_access_grants:
        grant = model.access_grant(grant_name)
        if not set(user.attribute_values(grant.user_attribute)) & set(grant.allowed_values):
            raise AccessDenied(
                f"Topic {topic.name!r} requires access grant {grant.name!r} "
                f"(user attribute {grant.user_attribute!r} in {list(grant.allowed_values)!r})"
            )


def _resolve_fields(topic: Topic, fields: Sequence[str]) -> tuple[list[Dimension], list[Measure]]:
    dimensions: list[Dimension] = []
    measures: list[Measure] = []
    for name in dict.fromkeys(fields):
        if any(d.name == name for d in topic.dimensions):
            dimensions.append(topic.dimension(name))
        elif any(m.name == name for m in topic.measures):
            measures.append(topic.measure(name))
        else:
            known = ", ".join([d.name for d in topic.dimensions] + [m.name for m in topic.measures])
            raise UnknownField(f"Topic {topic.name!r} has no field {name!r}; its fields are: {known}")
    return dimensions, measures


def _dimension(topic: Topic, name: str, role: str) -> Dimension:
    try:
        return topic.dimension(name)
    except KeyError as exc:
        raise UnknownField(f"Cannot use {name!r} as a {role}: {exc.args[0]}") from None


def _filter_clause(dimension: Dimension, flt: Filter) -> tuple[str, list[str]]:
    if flt.is_ is not None:
        return f"{dimension.sql} IN ({', '.join('?' * len(flt.is_))})", list(flt.is_)
    if flt.not_ is not None:
        return f"{dimension.sql} NOT IN ({', '.join('?' * len(flt.not_))})", list(flt.not_)
    assert flt.between is not None  # guaranteed by Filter's validator
    if dimension.time_grain != "date":
        raise UnknownField(f"'between' needs a date dimension; {dimension.name!r} is not one")
    return f"{dimension.sql} BETWEEN ? AND ?", list(flt.between)


def _order_by(query: Query, columns: Sequence[Dimension | Measure]) -> list[str]:
    position = {c.name: i for i, c in enumerate(columns)}
    order: list[str] = []
    for sort in query.sorts:
        if sort.column_name not in position:
            raise UnknownField(f"Cannot sort by {sort.column_name!r}: it is not one of the query's fields")
        order.append(f"c{position[sort.column_name]} {'DESC' if sort.sort_descending else 'ASC'}")
    if not order:
        # Omni's default: a time series runs forward in time, anything else shows the biggest values first.
        time_dim = next((c for c in columns if isinstance(c, Dimension) and c.time_grain), None)
        first_measure = next((c for c in columns if isinstance(c, Measure)), None)
        if time_dim is not None:
            order.append(f"c{position[time_dim.name]} ASC")
        elif first_measure is not None:
            order.append(f"c{position[first_measure.name]} DESC")
    # Then every dimension ascending, so ties come back in the same order on every run.
    order += [f"c{i} ASC" for i, c in enumerate(columns) if isinstance(c, Dimension)]
    return list(dict.fromkeys(order)) or ["1"]


def _format_cell(value: Any, is_currency: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if is_currency:
            return f"{value:.2f}"
        return str(int(value)) if value.is_integer() else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)
