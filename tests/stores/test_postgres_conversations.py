"""`PostgresStore` as a conversation store: the contract of `test_conversation_contract.py`, then several writers.

The contract tests are imported from `tests/stores/test_conversation_contract.py` and run here on this module's `store`
fixture, so the PostgreSQL store is held to exactly what the memory and SQLite stores promise. Two store
objects on one schema stand for two server workers. Each test works in a fresh schema (`tests/_postgres.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from omni_bridge.agent import Conversation, ConversationStore, OmniIdentity
from omni_bridge.exceptions import ConfigError, IdentityError
from omni_bridge.stores import PostgresStore
from omni_bridge.tools import Artifact
from tests.stores._postgres import fresh_schema

# The contract, collected again here with this module's `store` fixture.
from tests.stores.test_conversation_contract import (  # noqa: F401
    ALICE,
    BOB,
    conversation,
    test_a_closed_store_refuses_to_work_and_closes_twice_quietly,
    test_a_created_conversation_reads_back_equal,
    test_a_save_cannot_rebind_a_conversation_to_another_user,
    test_a_store_hands_out_copies_not_its_own_records,
    test_artifacts_are_found_only_by_their_owner,
    test_concurrent_saves_all_land_with_distinct_stamps,
    test_creating_an_existing_id_is_refused_and_keeps_the_first,
    test_delete_forgets_a_conversation,
    test_list_puts_the_most_recently_saved_first,
    test_list_refuses_a_limit_below_one,
    test_putting_an_artifact_again_replaces_it,
    test_save_creates_a_conversation_it_does_not_know,
    test_save_writes_the_whole_record_and_stamps_it_later,
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ConversationStore]:
    async with PostgresStore(pg_url) as opened:
        yield opened


@pytest.fixture
async def workers(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    async with PostgresStore(pg_url) as first, PostgresStore(pg_url) as second:
        yield first, second


async def test_a_conversation_saved_by_one_worker_is_read_by_another(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    record = conversation(title="Revenue", messages=[{"role": "user", "content": "Revenue?"}], metadata={"n": [1]})
    await worker_a.create(record)
    record.messages.append({"role": "assistant", "content": [{"type": "text", "text": "West: 42"}]})
    await worker_a.save(record)

    assert await worker_b.get(record.id) == record
    artifact = Artifact(owner="u-alice", tool="getData", columns=["region"], csv="region\nWest\n", row_count=1)
    await worker_b.artifacts.put(artifact)
    assert await worker_a.artifacts.get(artifact.id, owner="u-alice") == artifact


async def test_saves_on_two_workers_get_distinct_stamps_in_save_order(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    records = [conversation(title=str(n)) for n in range(16)]
    async with asyncio.timeout(30):
        await asyncio.gather(*(workers[n % 2].create(record) for n, record in enumerate(records)))
        await asyncio.gather(*(workers[n % 2].save(record) for n, record in enumerate(records)))

    listed = await workers[0].list(limit=100)
    assert {c.id for c in listed} == {r.id for r in records}
    stamps = [c.updated_at for c in listed]
    assert len(set(stamps)) == len(records) and stamps == sorted(stamps, reverse=True)
    # Each caller's copy carries the stamp its save wrote.
    assert {r.id: r.updated_at for r in records} == {c.id: c.updated_at for c in listed}


async def test_two_first_saves_of_one_id_by_two_users_bind_it_to_exactly_one(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    alice, bob = conversation(ALICE, title="alice's"), conversation(BOB, title="bob's")
    bob = Conversation.model_validate({**bob.model_dump(), "id": alice.id})

    async with asyncio.timeout(10):
        results = await asyncio.gather(workers[0].save(alice), workers[1].save(bob), return_exceptions=True)

    refused = [result for result in results if isinstance(result, IdentityError)]
    assert len(refused) == 1 and results.count(None) == 1
    stored = await workers[0].get(alice.id)
    winner = alice if results[0] is None else bob
    assert stored is not None and stored.identity == winner.identity and stored.title == winner.title


async def test_the_same_user_on_a_differently_written_server_url_may_save(store: ConversationStore) -> None:
    record = conversation(ALICE)
    await store.create(record)
    same = OmniIdentity(external_id="cust-42", user_id="u-alice", server="HTTPS://ACME.omniapp.co/")
    again = Conversation.model_validate({**record.model_dump(), "identity": same, "title": "renamed"})
    await store.save(again)
    stored = await store.get(record.id)
    assert stored is not None and stored.title == "renamed"


async def test_a_nul_character_in_a_tool_result_does_not_break_the_save(store: ConversationStore) -> None:
    record = conversation(messages=[{"role": "user", "content": "a\x00b"}])
    await store.save(record)
    artifact = Artifact(owner="u-alice", tool="getData", text="x\x00y")
    await store.artifacts.put(artifact)

    stored = await store.get(record.id)
    assert stored is not None and stored.messages == [{"role": "user", "content": "a\ufffdb"}]
    fetched = await store.artifacts.get(artifact.id, owner="u-alice")
    assert fetched is not None and fetched.text == "x\ufffdy"


async def test_records_are_jsonb_with_a_schema_version(store: ConversationStore, pg_url: str) -> None:
    record = conversation(metadata={"k": [1, 2]})
    await store.create(record)
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT record -> 'metadata', pg_typeof(record)::text FROM bridge_conversations").fetchone()
        versions = conn.execute("SELECT component, version FROM omni_bridge_schema").fetchall()
    assert row == ({"k": [1, 2]}, "jsonb")
    assert sorted(versions) == [("conversations", 1), ("service", 1)]  # one database, both components


async def test_a_database_from_a_newer_version_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE omni_bridge_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        conn.execute("INSERT INTO omni_bridge_schema VALUES ('conversations', 7)")
    store = PostgresStore(pg_url)
    with pytest.raises(ConfigError, match="schema version 7"):
        await store.get("conv_1")
    await store.aclose()


def test_the_repr_names_the_database_but_not_the_password() -> None:
    store = PostgresStore("postgresql://bridge:s3cret@db.internal:6432/bridge")
    assert repr(store) == "<PostgresStore postgresql://bridge@db.internal:6432/bridge open>"
    assert "s3cret" not in repr(store.artifacts)
