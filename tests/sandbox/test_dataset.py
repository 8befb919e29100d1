"""The sandbox's demo data: deterministic, big enough, and shaped the way the semantic model expects."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_bridge.sandbox._dataset import (
    BRANDS,
    CATEGORIES,
    DATA_END,
    DATA_START,
    DEFAULT_TODAY,
    PRODUCT_NAMES,
    REGION_STATES,
    STATUSES,
    TABLES,
    build_database,
    row_counts,
)


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    connection = build_database()
    yield connection
    connection.close()


def _checksum(conn: sqlite3.Connection) -> str:
    digest = hashlib.sha256()
    for table in TABLES:
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def test_two_builds_with_the_same_seed_hold_identical_rows(conn: sqlite3.Connection) -> None:
    again = build_database()
    assert _checksum(again) == _checksum(conn)


def test_another_seed_gives_other_rows(conn: sqlite3.Connection) -> None:
    other = build_database(seed=8)
    sql = "SELECT * FROM order_items ORDER BY id LIMIT 1000"
    assert other.execute(sql).fetchall() != conn.execute(sql).fetchall()


def test_row_counts_cover_every_table_and_enough_order_items(conn: sqlite3.Connection) -> None:
    counts = row_counts(conn)
    assert list(counts) == list(TABLES)
    assert counts["order_items"] >= 50_000
    assert counts["categories"] == len(CATEGORIES)
    assert counts["brands"] == len(BRANDS) >= 10
    assert 150 <= counts["products"] <= 300


def test_regions_are_exactly_the_four_and_states_belong_to_their_region(conn: sqlite3.Connection) -> None:
    regions = {r for (r,) in conn.execute("SELECT DISTINCT region FROM customers")}
    assert regions == {"West", "East", "Central", "South"}
    pairs = set(conn.execute("SELECT DISTINCT region, state FROM customers"))
    assert all(state in REGION_STATES[region] for region, state in pairs)
    assert ("West", "California") in pairs


def test_orders_span_two_full_years_up_to_the_day_before_today(conn: sqlite3.Connection) -> None:
    first, last = conn.execute("SELECT MIN(created_at), MAX(created_at) FROM orders").fetchone()
    assert (first, last) == ("2024-01-01", "2026-10-31")
    assert (first, last) == (DATA_START.isoformat(), DATA_END.isoformat())
    assert DEFAULT_TODAY.isoformat() == "2026-11-01"


def test_most_orders_are_complete_and_only_known_statuses_appear(conn: sqlite3.Connection) -> None:
    by_status = dict(conn.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall())
    assert set(by_status) == set(STATUSES)
    assert by_status["complete"] > 0.75 * sum(by_status.values())


def test_orders_grow_year_over_year_and_peak_in_december(conn: sqlite3.Connection) -> None:
    def orders_between(start: str, end: str) -> int:
        sql = "SELECT COUNT(*) FROM orders WHERE created_at BETWEEN ? AND ?"
        return int(conn.execute(sql, (start, end)).fetchone()[0])

    assert orders_between("2025-01-01", "2025-12-31") > 1.15 * orders_between("2024-01-01", "2024-12-31")
    assert orders_between("2025-12-01", "2025-12-31") > 1.3 * orders_between("2025-09-01", "2025-09-30")


def test_customers_sign_up_no_later_than_their_first_order(conn: sqlite3.Connection) -> None:
    late = conn.execute(
        "SELECT COUNT(*) FROM orders JOIN customers ON customers.id = orders.customer_id "
        "WHERE customers.created_at > orders.created_at"
    ).fetchone()[0]
    assert late == 0


def test_product_names_are_the_published_catalog(conn: sqlite3.Connection) -> None:
    names = [n for (n,) in conn.execute("SELECT name FROM products ORDER BY id")]
    assert names == list(PRODUCT_NAMES)
    assert "Acme Slim Jeans" in names


def test_rebuilding_a_file_replaces_its_tables(conn: sqlite3.Connection, tmp_path: Path) -> None:
    path = str(tmp_path / "sandbox.db")
    first = build_database(path)
    with first:
        first.execute("DELETE FROM order_items WHERE id > 10")
    first.close()
    second = build_database(path)
    assert row_counts(second) == row_counts(conn)
    second.close()
