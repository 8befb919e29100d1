"""What the one store object promises beyond each contract: a thread and its conversation are one row family, and
the end of an answer (response finished, assistant message, transcript) is written in one transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest

from omni_bridge._serving import serve_asgi
from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.exceptions import IdentityError
from omni_bridge.server import Service, create_app
from omni_bridge.stores import STORE_FILE, SqliteStore, Store, open_store
from omni_bridge.testing import text_reply, tool_use_reply
from tests.conftest import Served
from tests.server.service_helpers import KEY, REVENUE, data_of, running_service, service_settings, wait_for_response
from tests.stores._postgres import fresh_schema
from tests.stores.service_contract import ALICE, answer, started

IDENTITY = OmniIdentity(external_id="alice", user_id="u-alice", server="sandbox:embedded")
MALLORY = OmniIdentity(external_id="mallory", user_id="u-mallory", server="sandbox:embedded")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / STORE_FILE)
        return
    with fresh_schema() as pg_url:
        yield pg_url


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    async with open_store(url) as opened:
        yield opened


def _delete_thread_row(url: str, thread_id: str) -> None:
    """Delete a thread the way an operator would, in SQL, behind the store's back."""
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM bridge_threads WHERE id = %s", (thread_id,))
        return
    with sqlite3.connect(url) as db:
        db.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
    db.close()


async def test_deleting_a_thread_deletes_its_conversation(store: Store, url: str) -> None:
    thread, _response = await started(store)
    await store.create(Conversation(id=thread.id, identity=IDENTITY, engine="omni"))
    other = Conversation(identity=IDENTITY, engine="omni")  # a console conversation: no thread
    await store.create(other)

    _delete_thread_row(url, thread.id)
    assert await store.get(thread.id) is None
    assert await store.get(other.id) is not None


async def test_finish_writes_the_conversation_in_its_transaction(store: Store) -> None:
    thread, response = await started(store)
    conversation = Conversation(id=thread.id, identity=IDENTITY, engine="omni")
    await store.create(conversation)
    conversation.messages.append({"role": "user", "content": "revenue by region"})
    conversation.messages.append({"role": "assistant", "content": "West: 42"})

    assert await store.finish(response.id, "w1", "succeeded", message=answer(response), conversation=conversation)
    stored = await store.get(thread.id)
    assert stored is not None and stored.messages == conversation.messages
    assert stored.updated_at == conversation.updated_at


async def test_a_failed_final_write_leaves_neither_the_response_finished_nor_the_conversation_saved(
    store: Store,
) -> None:
    thread, response = await started(store)
    await store.create(Conversation(id=thread.id, identity=IDENTITY, engine="omni"))
    # The conversation's save is refused (another user's), after the message and the response were written.
    rebound = Conversation(id=thread.id, identity=MALLORY, engine="omni", title="rebound")

    with pytest.raises(IdentityError):
        await store.finish(response.id, "w1", "succeeded", message=answer(response), conversation=rebound)
    still = await store.get_response(ALICE, response.id)
    assert still is not None and still.status == "running" and still.message_id is None
    messages = await store.list_messages(ALICE, thread.id)
    assert messages is not None and [m.role for m in messages] == ["user"]
    kept = await store.get(thread.id)
    assert kept is not None and kept.identity == IDENTITY and kept.title is None


async def test_a_lost_lease_writes_neither_the_end_nor_the_conversation(store: Store) -> None:
    thread, response = await started(store)
    conversation = Conversation(id=thread.id, identity=IDENTITY, engine="omni", title="late")
    assert await store.expire_leases(datetime.now(UTC) + timedelta(hours=1))

    assert not await store.finish(response.id, "w1", "succeeded", message=answer(response), conversation=conversation)
    assert await store.get(thread.id) is None


async def test_one_answer_through_the_service_writes_one_database_file_in_one_final_transaction(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    settings = service_settings(served, data_dir, None)  # the `omni` engine: no LLM key needed
    service = Service(settings, worker_id="worker-a")
    store = service.store
    assert isinstance(store, SqliteStore)
    saves: list[str] = []
    finishes: list[Any] = []
    real_save, real_finish = store.save, store.finish

    async def save(conversation: Conversation) -> None:
        saves.append(conversation.id)
        await real_save(conversation)

    async def finish(*args: Any, **kwargs: Any) -> bool:
        finishes.append(kwargs.get("conversation"))
        return await real_finish(*args, **kwargs)

    monkeypatch.setattr(store, "save", save)
    monkeypatch.setattr(store, "finish", finish)
    headers = {"Authorization": f"Bearer {KEY}", "X-Bridge-User": "alice"}
    async with serve_asgi(create_app(settings, service=service)) as base_url:
        async with httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            ids = data_of(await client.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            done = await wait_for_response(client, ids["response_id"])
    assert done["status"] == "succeeded"

    # The transcript went with the end of the response, not in a transaction of its own.
    assert saves == []
    assert [c.id if c is not None else None for c in finishes] == [ids["thread_id"]]
    files = sorted(p.name for p in data_dir.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert files == [STORE_FILE]
    db = sqlite3.connect(data_dir / STORE_FILE)
    try:
        conversations = db.execute("SELECT id FROM conversations").fetchall()
        threads = db.execute("SELECT id FROM threads").fetchall()
        messages = db.execute("SELECT DISTINCT thread_id FROM messages").fetchall()
        responses = db.execute("SELECT DISTINCT thread_id FROM responses").fetchall()
    finally:
        db.close()
    assert conversations == threads == messages == responses == [(ids["thread_id"],)]


async def test_a_running_answer_keeps_its_transcript_turn_by_turn_with_its_events(
    served: Served, tmp_path: Path
) -> None:
    # Turn one asks for a tool; turn two streams slowly, so the run is still going when the store is read.
    script = (tool_use_reply(REVENUE, "Let me look that up."), text_reply("West leads the regions.", delay_seconds=0.5))
    async with running_service(served, tmp_path, *script) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            thread_id = ids["thread_id"]

            async def first_turn_saved() -> Conversation:
                while True:
                    stored = await svc.service.store.get(thread_id)
                    if stored is not None and any(
                        isinstance(m.get("content"), list)
                        and any(block.get("type") == "tool_result" for block in m["content"])
                        for m in stored.messages
                    ):
                        return stored
                    await asyncio.sleep(0.02)

            async with asyncio.timeout(15):
                stored = await first_turn_saved()
            running = data_of(await alice.get(f"/v1/responses/{ids['response_id']}"))
            # A worker lost now would leave the first turn (tool call and result) for the next question to see.
            assert running["status"] == "running"
            assert stored.messages[0]["content"] == [{"type": "text", "text": "revenue by region"}]
            done = await wait_for_response(alice, ids["response_id"])
    assert done["status"] == "succeeded"
