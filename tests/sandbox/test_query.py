"""Running semantic queries as a user: access grants, row-level security, limits, bad input and CSV."""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import pytest
from pydantic import ValidationError

from omni_bridge.sandbox._dataset import build_database
from omni_bridge.sandbox._query import (
    AccessDenied,
    Filter,
    MissingUserAttribute,
    Query,
    QueryResult,
    QueryUser,
    SandboxQueryError,
    Sort,
    UnknownField,
    UnknownTopic,
    pick_topic,
    run_query,
)
from omni_bridge.sandbox._semantic import MODELS, get_model

ECOMMERCE = get_model("6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f")
INVENTORY = get_model("inventory")
REVENUE = "order_items.total_revenue"
WEST = QueryUser("west-user", {"region": "West"})
EAST = QueryUser("east-user", {"region": "East"})
EVERYONE = QueryUser("admin", {"region": "all"})


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    connection = build_database()
    yield connection
    connection.close()


def _query(fields: list[str], topic: str = "order_items", **kwargs: object) -> Query:
    return Query.model_validate({"model_id": ECOMMERCE.id, "topic": topic, "fields": fields, **kwargs})


def _total_revenue(conn: sqlite3.Connection, user: QueryUser) -> float:
    result = run_query(conn, ECOMMERCE, _query([REVENUE]), user)
    return float(result.rows[0][0])


def test_users_in_different_regions_see_different_revenue_totals(conn: sqlite3.Connection) -> None:
    west, east, everyone = (_total_revenue(conn, u) for u in (WEST, EAST, EVERYONE))
    assert west != east
    assert 0 < west < everyone and 0 < east < everyone


def test_a_west_user_grouping_by_region_gets_only_west_rows(conn: sqlite3.Connection) -> None:
    result = run_query(conn, ECOMMERCE, _query(["customers.region", REVENUE]), WEST)
    assert [row[0] for row in result.rows] == ["West"]
    assert "customers.region IN (?)" in result.sql
    assert "West" in result.parameters


def test_a_user_with_two_regions_sees_both(conn: sqlite3.Connection) -> None:
    both = QueryUser("both", {"region": ["West", "East"]})
    result = run_query(conn, ECOMMERCE, _query(["customers.region", REVENUE]), both)
    assert sorted(row[0] for row in result.rows) == ["East", "West"]


def test_the_unfiltered_value_all_sees_every_region(conn: sqlite3.Connection) -> None:
    result = run_query(conn, ECOMMERCE, _query(["customers.region", REVENUE]), EVERYONE)
    assert sorted(row[0] for row in result.rows) == ["Central", "East", "South", "West"]
    assert "customers.region IN" not in result.sql


@pytest.mark.parametrize("region", [None, "", []], ids=["none", "empty", "empty-list"])
def test_a_user_without_the_region_attribute_is_refused(conn: sqlite3.Connection, region: object) -> None:
    attributes = {} if region is None else {"region": region}
    with pytest.raises(MissingUserAttribute) as caught:
        run_query(conn, ECOMMERCE, _query([REVENUE]), QueryUser("nobody", attributes))  # type: ignore[arg-type]
    assert caught.value.status == 403
    assert "'customers.region'" in str(caught.value) and "'region'" in str(caught.value)


def test_margins_need_the_finance_group(conn: sqlite3.Connection) -> None:
    query = _query(["products.category", "order_items.gross_margin"], topic="product_margins")
    with pytest.raises(AccessDenied) as caught:
        run_query(conn, ECOMMERCE, query, EVERYONE)
    assert caught.value.status == 403
    assert str(caught.value) == (
        "Topic 'product_margins' requires access grant 'finance_only' "
        "(user attribute 'omni_user_groups' in ['Finance'])"
    )
    finance = QueryUser("cfo", {"region": "all"}, groups=("Finance",))
    result = run_query(conn, ECOMMERCE, query, finance)
    assert len(result.rows) == 8
    assert all(margin > 0 for _, margin in result.rows)


def test_the_finance_group_may_also_come_as_the_system_attribute(conn: sqlite3.Connection) -> None:
    finance = QueryUser("cfo", {"region": "West", "omni_user_groups": ["Finance"]})
    query = _query(["order_items.margin_percent"], topic="product_margins")
    assert run_query(conn, ECOMMERCE, query, finance).rows[0][0] > 0


def test_a_small_limit_truncates_and_reports_the_total(conn: sqlite3.Connection) -> None:
    query = _query(["products.name", REVENUE], limit=5, sorts=[{"column_name": REVENUE, "sort_descending": True}])
    result = run_query(conn, ECOMMERCE, query, EVERYONE)
    assert len(result.rows) == 5
    assert result.total_row_count == 240
    assert result.truncated
    revenues = [row[1] for row in result.rows]
    assert revenues == sorted(revenues, reverse=True)
    whole = run_query(conn, ECOMMERCE, query.model_copy(update={"limit": 1000}), EVERYONE)
    assert not whole.truncated and len(whole.rows) == whole.total_row_count == 240
    assert whole.rows[:5] == result.rows


def test_an_injection_attempt_in_a_filter_value_is_just_a_value(conn: sqlite3.Connection) -> None:
    evil = "West') OR 1=1; DROP TABLE orders; --"
    query = _query([REVENUE], filters={"customers.region": {"is": [evil]}})
    result = run_query(conn, ECOMMERCE, query, EVERYONE)
    assert result.rows == [(None,)]
    assert evil not in result.sql and evil in result.parameters
    assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] > 0


def test_a_user_filter_cannot_widen_row_level_security(conn: sqlite3.Connection) -> None:
    query = _query(["customers.region", REVENUE], filters={"customers.region": {"is": ["East", "West"]}})
    assert [row[0] for row in run_query(conn, ECOMMERCE, query, WEST).rows] == ["West"]


def test_date_filters_are_inclusive_and_time_series_run_forward(conn: sqlite3.Connection) -> None:
    query = _query(
        ["orders.created_at[month]", "orders.count"],
        filters={"orders.created_at": {"between": ["2025-07-01", "2025-09-30"]}},
    )
    result = run_query(conn, ECOMMERCE, query, EVERYONE)
    assert [row[0] for row in result.rows] == ["2025-07", "2025-08", "2025-09"]
    single_day = _query(["orders.count"], filters={"orders.created_at": {"between": ["2025-07-01", "2025-07-01"]}})
    expected = conn.execute("SELECT COUNT(*) FROM orders WHERE created_at = '2025-07-01'").fetchone()[0]
    assert run_query(conn, ECOMMERCE, single_day, EVERYONE).rows == [(expected,)]


def test_not_filters_exclude_values(conn: sqlite3.Connection) -> None:
    query = _query(["orders.status", "orders.count"], filters={"orders.status": {"not": ["cancelled"]}})
    statuses = {row[0] for row in run_query(conn, ECOMMERCE, query, EVERYONE).rows}
    assert statuses == {"complete", "returned"}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (_query(["orders.nonsense"]), UnknownField),
        (_query([REVENUE], filters={REVENUE: {"is": ["1"]}}), UnknownField),
        (_query([REVENUE], sorts=[{"column_name": "orders.count"}]), UnknownField),
        (_query([REVENUE], filters={"products.category": {"between": ["2025-01-01", "2025-02-01"]}}), UnknownField),
        (_query([REVENUE], topic="no_such_topic"), UnknownTopic),
    ],
    ids=["unknown-field", "filter-on-measure", "sort-not-in-fields", "between-on-text", "unknown-topic"],
)
def test_bad_queries_raise_a_clear_error(conn: sqlite3.Connection, query: Query, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        run_query(conn, ECOMMERCE, query, EVERYONE)
    assert isinstance(caught.value, SandboxQueryError)
    assert caught.value.status in (400, 404)
    assert "\n" not in str(caught.value)


def test_malformed_filters_and_limits_are_rejected_when_the_query_is_built() -> None:
    with pytest.raises(ValidationError):
        _query([REVENUE], filters={"orders.created_at": {"between": ["2025-09-30", "2025-07-01"]}})
    with pytest.raises(ValidationError):
        _query([REVENUE], filters={"orders.status": {"is": ["complete"], "not": ["returned"]}})
    with pytest.raises(ValidationError):
        _query([REVENUE], limit=50_001)


def test_the_query_serialises_to_omni_shape_and_back() -> None:
    query = _query(
        ["products.name", REVENUE],
        filters={"orders.created_at": Filter.date_range("2026-07-01", "2026-09-30")},
        sorts=[Sort(column_name=REVENUE, sort_descending=True)],
        limit=5,
    )
    body = query.to_omni_dict()
    assert body == {
        "modelId": ECOMMERCE.id,
        "table": "order_items",
        "fields": ["products.name", REVENUE],
        "filters": {"orders.created_at": {"between": ["2026-07-01", "2026-09-30"]}},
        "sorts": [{"column_name": REVENUE, "sort_descending": True}],
        "limit": 5,
        "topicName": "order_items",
    }
    assert Query.from_omni_dict(body).to_omni_dict() == body
    assert Filter.any_of(["West"]).model_dump(exclude_none=True) == {"is": ["West"]}


def test_csv_has_labels_and_no_float_noise(conn: sqlite3.Connection) -> None:
    query = _query(
        ["customers.region", REVENUE, "orders.count", "order_items.average_order_value"],
        sorts=[{"column_name": "customers.region"}],
    )
    result = run_query(conn, ECOMMERCE, query, EVERYONE)
    lines = result.to_csv().split("\n")
    assert lines[0] == "Region,Total Revenue,Order Count,Average Order Value"
    assert lines[1].startswith("Central,")
    assert lines[-1] == "" and len(lines) == 6
    revenue, orders, aov = lines[1].split(",")[1:]
    assert len(revenue.split(".")[1]) == 2 and orders.isdigit() and len(aov.split(".")[1]) == 2


def test_csv_formatting_of_awkward_floats() -> None:
    result = QueryResult(
        columns=["a", "b"],
        labels=["A, quoted", "B"],
        rows=[(0.1 + 0.2, 0.1 + 0.2), (None, 3.0)],
        total_row_count=2,
        truncated=False,
        sql="",
        query=_query([REVENUE]),
        topic="order_items",
        currency_columns=frozenset({"a"}),
    )
    assert result.to_csv() == '"A, quoted",B\n0.30,0.3\n,3\n'


def test_errors_survive_pickling_with_their_status() -> None:
    error = pickle.loads(pickle.dumps(AccessDenied("no")))
    assert isinstance(error, AccessDenied) and error.status == 403 and str(error) == "no"


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("top 5 products by revenue last quarter", "order_items"),
        ("how many new customers signed up last quarter", "customers"),
        ("repeat customers by region", "customers"),
        ("gross margin by category", "product_margins"),
        ("revenue by category", "order_items"),
        ("tell me a joke", "order_items"),
    ],
)
def test_pick_topic_follows_the_question_vocabulary(question: str, topic: str) -> None:
    assert pick_topic(ECOMMERCE, question).name == topic
    assert pick_topic(INVENTORY, question).name == "products"


def test_pick_topic_stays_within_ai_chat_topics() -> None:
    restricted = replace(ECOMMERCE, ai_chat_topics=("order_items", "customers"))
    assert pick_topic(restricted, "gross margin by category").name == "order_items"


def test_every_access_filter_and_grant_points_at_something_real() -> None:
    for model in MODELS:
        for topic in model.topics:
            for access_filter in topic.access_filters:
                topic.dimension(access_filter.field)
            for grant in topic.required_access_grants:
                model.access_grant(grant)
            if topic.time_field is not None:
                assert topic.dimension(topic.time_field).time_grain == "date"
    with pytest.raises(KeyError, match="no topic 'nope'"):
        ECOMMERCE.topic("nope")
    with pytest.raises(KeyError, match="No model"):
        get_model("nope")
