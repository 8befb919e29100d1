"""The running service applies `BRIDGE_RETENTION_DAYS`: a pass at start and then every interval, logged with its
counts, never touching a thread whose response still runs, surviving a failed pass, stopping with the service.

The records are written before the service starts; its retention clock is set 100 days ahead, so they are
old without anyone waiting. Both backends (PostgreSQL where a database is configured).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omni_bridge.server import Service
from omni_bridge.stores import PruneCounts, SqliteStore, Store, open_store
from tests.conftest import Served
from tests.server.service_helpers import service_settings
from tests.stores.service_contract import ALICE, answer, new_thread

LATER = timedelta(days=100)


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(store_url or str(tmp_path / "bridge.db"))
    async with opened:
        yield opened


async def finished_thread(store: Store) -> str:
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)
    assert await store.claim(response.id, "w-old", datetime.now(UTC) + timedelta(minutes=5)) is not None
    assert await store.finish(response.id, "w-old", "succeeded", message=answer(response))
    return thread.id


async def running_thread(store: Store) -> str:
    """A thread whose response another (live) worker runs: its lease lasts past the test."""
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)
    assert await store.claim(response.id, "w-other", datetime.now(UTC) + LATER * 2) is not None
    return thread.id


def service(served: Served, tmp_path: Path, store: Store, *, days: float = 90, interval: float = 3600) -> Service:
    built = Service(service_settings(served, tmp_path, None, bridge_retention_days=days), store=store)
    built.retention.clock = lambda: datetime.now(UTC) + LATER
    built.retention.interval_seconds = interval
    return built


async def test_the_service_prunes_at_start_and_keeps_running_threads(
    served: Served, tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    old = await finished_thread(store)
    running = await running_thread(store)
    caplog.set_level(logging.INFO, logger="omni_bridge.server.retention")

    async with service(served, tmp_path, store) as worker:
        async with asyncio.timeout(10):
            await worker.retention.wait_for_passes(1)
        assert worker.retention.last == PruneCounts(threads=1, messages=2, responses=1)
        assert await store.get_thread(ALICE, old) is None
        assert await store.get_thread(ALICE, running) is not None

    assert any(
        "retention: deleted threads: 1, messages: 2, responses: 1, events: 0" in r.getMessage() for r in caplog.records
    )


async def test_the_service_prunes_again_every_interval_and_stops_with_it(
    served: Served, tmp_path: Path, store: Store
) -> None:
    async with service(served, tmp_path, store, interval=0.05) as worker:
        async with asyncio.timeout(10):
            await worker.retention.wait_for_passes(1)
            later = await finished_thread(store)  # written while the service runs: the next pass takes it
            await worker.retention.wait_for_passes(worker.retention.passes + 2)
        assert await store.get_thread(ALICE, later) is None

    assert worker.retention.passes >= 3
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "retention"]


async def test_zero_days_keeps_everything(served: Served, tmp_path: Path, store: Store) -> None:
    old = await finished_thread(store)
    async with service(served, tmp_path, store, days=0, interval=0.01) as worker:
        assert not worker.retention.enabled
        assert not [task for task in asyncio.all_tasks() if task.get_name() == "retention"]
    assert worker.retention.passes == 0
    assert await store.get_thread(ALICE, old) is not None


class _FailsOnce(SqliteStore):
    """A SQLite store whose first prune fails, as a database that went away for a moment would."""

    failed = 0

    async def prune(self, older_than: datetime, *, dry_run: bool = False) -> PruneCounts:
        if not self.failed:
            self.failed += 1
            raise RuntimeError("the database went away")
        return await super().prune(older_than, dry_run=dry_run)


async def test_a_failed_pass_is_logged_and_the_next_one_runs(
    served: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _FailsOnce(tmp_path / "flaky.db") as flaky:
        old = await finished_thread(flaky)
        async with service(served, tmp_path, flaky, interval=0.05) as worker:
            async with asyncio.timeout(10):
                await worker.retention.wait_for_passes(1)
            assert flaky.failed == 1
            assert await flaky.get_thread(ALICE, old) is None
    assert any("retention: the pass failed" in r.getMessage() for r in caplog.records)
