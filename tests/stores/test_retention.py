"""Retention on both backends: `prune(older_than)` deletes every kind of record last touched before then, keeps
the recent ones and every thread whose response still runs, and a dry run counts the same and deletes nothing.

"Old" is what was written before the cutoff the test takes (stores stamp their own times), so nothing waits
for a clock; artifacts carry their own `created_at`, set to 100 days ago for the old one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.stores import (
    PostgresStore,
    PruneCounts,
    SqliteStore,
    Store,
    ThreadRecord,
    _pg_conversations,
    _sqlite_tables,
)
from omni_bridge.tools import Artifact
from tests.stores._postgres import fresh_schema
from tests.stores.service_contract import ALICE, BOB, answer, new_message, new_thread

IDENTITY = OmniIdentity(external_id="alice", user_id="u-alice", server="https://acme.omniapp.co")
EVENTS: list[dict[str, object]] = [
    {"type": "text_delta", "text": "West"},
    {"type": "text_delta", "text": ": 42"},
    {"type": "usage"},
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend (PostgreSQL in a fresh schema, skipped without a database)."""
    if request.param == "sqlite":
        async with SqliteStore(tmp_path / "bridge.db") as sqlite:
            yield sqlite
        return
    with fresh_schema() as url:
        async with PostgresStore(url) as postgres:
            yield postgres


def _now() -> datetime:
    return datetime.now(UTC)


def _lease() -> datetime:
    return _now() + timedelta(minutes=5)


async def finished_thread(store: Store) -> ThreadRecord:
    """A thread answered once: 2 messages, 1 response with 3 events, and its conversation (same id)."""
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)
    assert await store.claim(response.id, "w1", _lease()) is not None
    assert await store.append(response.id, "w1", EVENTS)
    transcript = Conversation(id=thread.id, identity=IDENTITY, engine="omni")
    assert await store.finish(response.id, "w1", "succeeded", message=answer(response), conversation=transcript)
    return thread


async def running_thread(store: Store) -> tuple[ThreadRecord, str]:
    """A thread whose second response is running (the first one ended)."""
    thread = await finished_thread(store)
    message, response = new_message(thread, "and by month?")
    assert await store.post_message(message, response) is not None
    assert await store.claim(response.id, "w1", _lease()) is not None
    return thread, response.id


async def queued_thread(store: Store) -> ThreadRecord:
    thread, message, response = new_thread(BOB)
    await store.create_thread(thread, message, response)
    return thread


def artifact(made: datetime | None = None) -> Artifact:
    if made is None:
        return Artifact(owner="u-alice", tool="getData", text="West: 42")
    return Artifact(owner="u-alice", tool="getData", text="West: 42", created_at=made)


@dataclass
class Old:
    finished: ThreadRecord
    running: ThreadRecord
    running_response: str
    queued: ThreadRecord
    lone: Conversation
    artifact: Artifact


async def write_old(store: Store) -> Old:
    """Records of every kind, all written before the cutoff the caller takes next."""
    finished = await finished_thread(store)
    running, running_response = await running_thread(store)
    queued = await queued_thread(store)
    lone = Conversation(identity=IDENTITY, engine="claude")
    await store.create(lone)
    old_artifact = artifact(_now() - timedelta(days=100))
    await store.artifacts.put(old_artifact)
    return Old(finished, running, running_response, queued, lone, old_artifact)


async def exists(store: Store, thread: ThreadRecord) -> bool:
    return await store.get_thread(thread.owner, thread.id) is not None


# What one finished thread, one thread-less conversation and one old artifact add up to.
OLD_COUNTS = PruneCounts(threads=1, messages=2, responses=1, events=3, conversations=2, artifacts=1)


async def test_prune_deletes_old_records_of_every_kind_and_keeps_recent_and_running_ones(store: Store) -> None:
    old = await write_old(store)
    cutoff = _now()
    recent = await finished_thread(store)
    recent_lone = Conversation(identity=IDENTITY, engine="claude")
    await store.create(recent_lone)
    recent_artifact = artifact()
    await store.artifacts.put(recent_artifact)

    assert await store.prune(cutoff) == OLD_COUNTS

    finished = old.finished
    assert not await exists(store, finished)
    assert await store.list_messages(ALICE, finished.id) is None
    assert await store.get_response(ALICE, finished.current_response_id or "") is None
    assert await store.events_after(ALICE, finished.current_response_id or "", 0) is None
    assert await store.get(finished.id) is None
    assert await store.get(old.lone.id) is None
    assert await store.artifacts.get(old.artifact.id, owner="u-alice") is None
    # Kept: what is recent, and the old threads whose responses are still queued or running.
    for kept in (recent, old.running, old.queued):
        assert await exists(store, kept)
    assert await store.get(recent.id) is not None and await store.get(recent_lone.id) is not None
    assert await store.artifacts.get(recent_artifact.id, owner="u-alice") is not None
    running = await store.get_response(ALICE, old.running_response)
    assert running is not None and running.status == "running"
    messages = await store.list_messages(ALICE, old.running.id)
    assert messages is not None and len(messages) == 3
    assert await store.get(old.running.id) is not None  # the running thread's conversation stays too

    # Nothing left to delete before the cutoff; once the run ends, its thread goes like any other.
    assert await store.prune(cutoff) == PruneCounts()
    assert await store.finish(old.running_response, "w1", "succeeded", message=answer(running))
    assert (await store.prune(_now())).threads == 2  # the old running thread and the recent one
    assert await exists(store, old.queued) and not await exists(store, old.running)


async def test_a_dry_run_counts_what_prune_would_delete_and_deletes_nothing(store: Store) -> None:
    old = await write_old(store)
    cutoff = _now()

    assert await store.prune(cutoff, dry_run=True) == OLD_COUNTS
    assert await store.prune(cutoff, dry_run=True) == OLD_COUNTS
    assert await exists(store, old.finished) and await store.get(old.lone.id) is not None
    assert await store.artifacts.get(old.artifact.id, owner="u-alice") is not None
    messages = await store.list_messages(ALICE, old.finished.id)
    assert messages is not None and len(messages) == 2

    assert await store.prune(cutoff) == OLD_COUNTS


async def test_prune_works_through_more_records_than_one_batch(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite_tables, "PRUNE_BATCH", 2)
    monkeypatch.setattr(_pg_conversations, "PRUNE_BATCH", 2)
    threads = [await finished_thread(store) for _ in range(5)]
    lone = [Conversation(identity=IDENTITY, engine="claude") for _ in range(3)]
    for conversation in lone:
        await store.create(conversation)
    for _ in range(5):
        await store.artifacts.put(artifact(_now() - timedelta(days=100)))
    running, _ = await running_thread(store)
    cutoff = _now()
    kept = await finished_thread(store)

    expected = PruneCounts(threads=5, messages=10, responses=5, events=15, conversations=8, artifacts=5)
    assert await store.prune(cutoff, dry_run=True) == expected
    assert await store.prune(cutoff) == expected
    assert not any([await exists(store, thread) for thread in threads])
    assert await exists(store, running) and await exists(store, kept)
    assert await store.prune(cutoff) == PruneCounts()
