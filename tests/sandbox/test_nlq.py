"""Plain-English questions to queries: a table of questions and the exact query each must become."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from omni_bridge.sandbox._dataset import build_database
from omni_bridge.sandbox._nlq import describe_capabilities, parse_question
from omni_bridge.sandbox._query import QueryUser, QuestionNotUnderstood, run_query
from omni_bridge.sandbox._semantic import get_model

ECOMMERCE = get_model("ecommerce")
INVENTORY = get_model("inventory")
TODAY = date(2026, 11, 1)

REVENUE = "order_items.total_revenue"
ORDERS = "orders.count"
UNITS = "order_items.total_units"
BUYERS = "customers.count"
AOV = "order_items.average_order_value"
ORDER_DATE = "orders.created_at"
MONTH, QUARTER, YEAR = "orders.created_at[month]", "orders.created_at[quarter]", "orders.created_at[year]"


def _between(start: str, end: str) -> dict[str, Any]:
    return {ORDER_DATE: {"between": [start, end]}}


def _desc(column: str) -> list[dict[str, Any]]:
    return [{"column_name": column, "sort_descending": True}]


def _asc(column: str) -> list[dict[str, Any]]:
    return [{"column_name": column, "sort_descending": False}]


# (question, topic, fields, filters, sorts, limit); dates are relative to TODAY = 2026-11-01.
CASES: list[tuple[str, str, list[str], dict[str, Any], list[dict[str, Any]], int]] = [
    ("top 5 products by revenue last quarter", "order_items", ["products.name", REVENUE],
     _between("2026-07-01", "2026-09-30"), _desc(REVENUE), 5),
    ("Revenue and orders by region", "order_items", ["customers.region", REVENUE, ORDERS], {}, _desc(REVENUE), 1000),
    ("What was revenue by month this year?", "order_items", [MONTH, REVENUE],
     _between("2026-01-01", "2026-12-31"), _asc(MONTH), 1000),
    ("monthly sales in 2025", "order_items", [MONTH, REVENUE], _between("2025-01-01", "2025-12-31"), _asc(MONTH), 1000),
    ("revenue per quarter last year", "order_items", [QUARTER, REVENUE],
     _between("2025-01-01", "2025-12-31"), _asc(QUARTER), 1000),
    ("revenue in Q3 2025", "order_items", [REVENUE], _between("2025-07-01", "2025-09-30"), [], 1000),
    ("gmv this quarter", "order_items", [REVENUE], _between("2026-10-01", "2026-12-31"), [], 1000),
    ("orders in the last 6 months", "order_items", [ORDERS], _between("2026-05-01", "2026-10-31"), [], 1000),
    ("number of orders in the past 90 days", "order_items", [ORDERS], _between("2026-08-03", "2026-10-31"), [], 1000),
    ("units sold last 12 weeks", "order_items", [UNITS], _between("2026-08-09", "2026-10-31"), [], 1000),
    ("revenue since March 2025 by year", "order_items", [YEAR, REVENUE],
     _between("2025-03-01", "2026-10-31"), _asc(YEAR), 1000),
    ("sales in October 2026 by category", "order_items", ["products.category", REVENUE],
     _between("2026-10-01", "2026-10-31"), _desc(REVENUE), 1000),
    ("revenue in the West", "order_items", [REVENUE], {"customers.region": {"is": ["West"]}}, [], 1000),
    ("units for Jeans in California", "order_items", [UNITS],
     {"products.category": {"is": ["Jeans"]}, "customers.state": {"is": ["California"]}}, [], 1000),
    ("total sales for Acme brand by month", "order_items", [MONTH, REVENUE],
     {"products.brand": {"is": ["Acme"]}}, _asc(MONTH), 1000),
    ("bottom 3 states", "order_items", ["customers.state", REVENUE], {}, [{"column_name": REVENUE,
     "sort_descending": False}], 3),
    ("top 3 brands by units", "order_items", ["products.brand", UNITS], {}, _desc(UNITS), 3),
    ("which category has the highest aov", "order_items", ["products.category", AOV], {}, _desc(AOV), 1000),
    ("lowest selling products by items sold", "order_items", ["products.name", UNITS], {}, _asc(UNITS), 1000),
    ("revenue and orders by brand sorted by orders", "order_items", ["products.brand", REVENUE, ORDERS], {},
     _desc(ORDERS), 1000),
    ("unique customers by region", "order_items", ["customers.region", BUYERS], {}, _desc(BUYERS), 1000),
    ("top 10 customers by revenue", "order_items", ["customers.name", REVENUE], {}, _desc(REVENUE), 10),
    ("avg order value trend", "order_items", [MONTH, AOV], {}, _asc(MONTH), 1000),
    ("revenue in the West and East", "order_items", ["customers.region", REVENUE],
     {"customers.region": {"is": ["West", "East"]}}, _desc(REVENUE), 1000),
    ("returned orders by category", "order_items", ["products.category", ORDERS],
     {"orders.status": {"is": ["returned"]}}, _desc(ORDERS), 1000),
    ("revenue from January 2025 to March 2025", "order_items", [REVENUE],
     _between("2025-01-01", "2025-03-31"), [], 1000),
    ("sales for t-shirts year to date", "order_items", [REVENUE],
     {"products.category": {"is": ["Tops & Tees"]}, **_between("2026-01-01", "2026-10-31")}, [], 1000),
    ("new customers last quarter by region", "customers", ["customers.region", "customers.count"],
     {"customers.created_at": {"between": ["2026-07-01", "2026-09-30"]}}, _desc("customers.count"), 1000),
    ("gross margin by category", "product_margins", ["products.category", "order_items.gross_margin"], {},
     _desc("order_items.gross_margin"), 1000),
    ("bottom 5 products by margin %", "product_margins", ["products.name", "order_items.margin_percent"], {},
     _asc("order_items.margin_percent"), 5),
]  # fmt: skip


@pytest.mark.parametrize(("question", "topic", "fields", "filters", "sorts", "limit"), CASES, ids=[c[0] for c in CASES])
def test_questions_become_the_expected_query(
    question: str, topic: str, fields: list[str], filters: dict[str, Any], sorts: list[dict[str, Any]], limit: int
) -> None:
    query = parse_question(question, ECOMMERCE, ECOMMERCE.topic(topic), today=TODAY)
    body = query.to_omni_dict()
    assert (body["fields"], body["filters"], body["sorts"], body["limit"]) == (fields, filters, sorts, limit)
    assert (body["modelId"], body["topicName"]) == (ECOMMERCE.id, topic)


def test_inventory_questions_use_the_catalog_topic() -> None:
    topic = INVENTORY.topic("products")
    query = parse_question("how many products per category for Acme brand", INVENTORY, topic, today=TODAY)
    assert query.fields == ["products.category", "products.count"]
    assert query.to_omni_dict()["filters"] == {"products.brand": {"is": ["Acme"]}}
    price = parse_question("average retail price by brand", INVENTORY, topic, today=TODAY)
    assert price.fields == ["products.brand", "products.average_retail_price"]


def test_relative_dates_follow_today() -> None:
    topic = ECOMMERCE.topic("order_items")
    query = parse_question("revenue last quarter", ECOMMERCE, topic, today=date(2025, 2, 14))
    assert query.to_omni_dict()["filters"] == _between("2024-10-01", "2024-12-31")
    query = parse_question("revenue in december", ECOMMERCE, topic, today=date(2025, 2, 14))
    assert query.to_omni_dict()["filters"] == _between("2024-12-01", "2024-12-31")


def test_parsing_is_deterministic() -> None:
    topic = ECOMMERCE.topic("order_items")
    question = "top 5 products by revenue and orders in the South since March 2025"
    first = parse_question(question, ECOMMERCE, topic, today=TODAY)
    assert all(parse_question(question, ECOMMERCE, topic, today=TODAY) == first for _ in range(3))


@pytest.mark.parametrize("question", ["what's the weather in Paris?", "hello", ""])
def test_an_unrelated_question_lists_what_can_be_asked(question: str) -> None:
    topic = ECOMMERCE.topic("order_items")
    with pytest.raises(QuestionNotUnderstood) as caught:
        parse_question(question, ECOMMERCE, topic, today=TODAY)
    message = str(caught.value)
    assert caught.value.status == 400
    for expected in ("Total Revenue", "Order Count", "Average Order Value", "Category", "Region", "Order Month"):
        assert expected in message
    assert "last quarter" in message and "West" in message and "Top 5 products by revenue last quarter" in message


def test_grouping_by_something_unknown_is_not_silently_dropped() -> None:
    with pytest.raises(QuestionNotUnderstood, match="'planet'"):
        parse_question("revenue by planet", ECOMMERCE, ECOMMERCE.topic("order_items"), today=TODAY)


def test_a_time_filter_on_a_topic_without_dates_is_refused() -> None:
    with pytest.raises(QuestionNotUnderstood, match="no dates"):
        parse_question("products added last year", INVENTORY, INVENTORY.topic("products"), today=TODAY)


def test_capabilities_describe_the_topic() -> None:
    text = describe_capabilities(ECOMMERCE.topic("product_margins"))
    assert "Gross Margin %" in text and "Brand (Acme" in text and "Time filters on Order Date" in text
    assert "Time filters" not in describe_capabilities(INVENTORY.topic("products"))


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    connection = build_database()
    yield connection
    connection.close()


def test_every_table_question_runs(conn: sqlite3.Connection) -> None:
    finance = QueryUser("cfo", {"region": "all"}, groups=("Finance",))
    for question, topic, *_ in CASES:
        query = parse_question(question, ECOMMERCE, ECOMMERCE.topic(topic), today=TODAY)
        result = run_query(conn, ECOMMERCE, query, finance)
        assert result.rows, question
