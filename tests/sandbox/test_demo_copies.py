"""The demo database is built once and copied: each copy is the built rows, private, and a later process reads
the cached file instead of generating the rows again."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from omni_bridge.sandbox import Sandbox, SandboxConfig, _demo_copies
from omni_bridge.sandbox._dataset import build_database, row_counts
from omni_bridge.sandbox._demo_copies import demo_database

REVENUE = "SELECT ROUND(SUM(quantity * sale_price), 2) FROM order_items"


@pytest.fixture
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if this were a new process: no template kept in memory yet."""
    monkeypatch.setattr(_demo_copies, "_templates", {})


def _revenue(conn: sqlite3.Connection) -> float:
    return float(conn.execute(REVENUE).fetchone()[0])


@pytest.mark.usefixtures("new_process")
def test_a_copy_holds_exactly_the_rows_a_build_makes() -> None:
    built, copy = build_database(seed=7), demo_database(7)
    assert row_counts(copy) == row_counts(built)
    assert list(copy.iterdump()) == list(built.iterdump())
    assert list(demo_database(8).iterdump()) != list(built.iterdump())  # the seed still matters


@pytest.mark.usefixtures("new_process")
def test_each_sandbox_has_its_own_copy() -> None:
    first, second = Sandbox(), Sandbox()
    revenue = _revenue(second.conn)
    first.conn.execute("DELETE FROM order_items")
    assert _revenue(second.conn) == revenue
    assert _revenue(Sandbox().conn) == revenue


@pytest.mark.usefixtures("new_process")
def test_the_cached_file_is_private_and_a_later_process_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo_database(7, tmp_path)
    (cached,) = tmp_path.glob("demo-data-7-*.sqlite")
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    with sqlite3.connect(cached) as on_disk:  # mark the file, to see that the next start reads it
        on_disk.execute("UPDATE categories SET name = 'Marked' WHERE id = 1")
    monkeypatch.setattr(_demo_copies, "_templates", {})
    conn = demo_database(7, tmp_path)
    assert conn.execute("SELECT name FROM categories WHERE id = 1").fetchone() == ("Marked",)


@pytest.mark.usefixtures("new_process")
def test_a_broken_or_stale_cache_is_rebuilt_and_the_stale_one_removed(tmp_path: Path) -> None:
    stale = tmp_path / "demo-data-7-0000000000000000.sqlite"
    stale.write_bytes(b"an older generator's file")
    current = tmp_path / f"demo-data-7-{_demo_copies._fingerprint()}.sqlite"
    current.write_bytes(b"not a database")
    conn = demo_database(7, tmp_path)
    assert row_counts(conn) == row_counts(build_database(seed=7))
    assert sorted(tmp_path.iterdir()) == [current]
    with sqlite3.connect(current) as on_disk:
        assert row_counts(on_disk) == row_counts(conn)


@pytest.mark.usefixtures("new_process")
def test_the_embedded_sandbox_keeps_its_cache_in_its_data_folder(tmp_path: Path) -> None:
    Sandbox(SandboxConfig(data_dir=tmp_path))
    assert [p.name for p in tmp_path.glob("demo-data-*")] == [f"demo-data-7-{_demo_copies._fingerprint()}.sqlite"]
