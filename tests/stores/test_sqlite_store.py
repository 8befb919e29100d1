"""`SqliteStore` as the service's store: the shared contract, plus what only a file-backed store promises."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omni_bridge.exceptions import ConfigError
from omni_bridge.stores import ServiceStore, SqliteStore
from tests.stores.service_contract import *  # noqa: F403  (the contract's tests run here against SQLite)
from tests.stores.service_contract import ALICE, answer, started


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ServiceStore]:
    opened = SqliteStore(tmp_path / "service.db")
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_everything_is_still_there_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    async with SqliteStore(path) as first:
        thread, response = await started(first)
        assert await first.append(response.id, "w1", [{"type": "progress"}])
        assert await first.finish(response.id, "w1", "succeeded", message=answer(response))

    async with SqliteStore(path) as second:
        again = await second.get_response(ALICE, response.id)
        assert again is not None and again.status == "succeeded"
        messages = await second.list_messages(ALICE, thread.id)
        assert messages is not None and [m.role for m in messages] == ["user", "assistant"]
        assert await second.events_after(ALICE, response.id, 0) is not None


async def test_two_store_objects_on_one_file_act_as_two_workers(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    async with SqliteStore(path) as one, SqliteStore(path) as two:
        _thread, response = await started(one)
        assert await two.claim(response.id, "w2", datetime.now(UTC) + timedelta(minutes=1)) is None

        # A cancel written through the other object is seen by polling, not by a local wake-up.
        waiting = asyncio.create_task(one.wait_for_change(response.id, 60.0))
        await asyncio.sleep(0)
        assert await two.request_cancel(ALICE, response.id, by="alice") is not None
        async with asyncio.timeout(5):
            await waiting
        beat = await one.heartbeat(response.id, "w1", datetime.now(UTC) + timedelta(minutes=1))
        assert beat is not None and beat.cancel_requested


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    path.write_text("not a database" * 100, encoding="utf-8")
    with pytest.raises(ConfigError, match="BRIDGE_STORE_URL"):
        SqliteStore(path)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    await SqliteStore(path).aclose()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (99)")
    db.close()
    with pytest.raises(ConfigError, match="newer"):
        SqliteStore(path)
