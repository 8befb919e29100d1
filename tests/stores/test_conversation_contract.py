"""Conversation stores: one contract for every backend (memory, SQLite; PostgreSQL beside it), and a SQLite file
that outlives the process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omni_bridge.agent import ConversationStore, MemoryConversationStore
from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.events import Usage
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.exceptions import ConfigError, IdentityError
from omni_bridge.stores import SqliteStore, open_store
from omni_bridge.tools import Artifact

ALICE = OmniIdentity(external_id="cust-42", user_id="u-alice", server="https://acme.omniapp.co")
BOB = OmniIdentity(external_id="cust-43", user_id="u-bob", server="https://acme.omniapp.co")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    opened: ConversationStore = (
        MemoryConversationStore() if request.param == "memory" else SqliteStore(tmp_path / "bridge.db")
    )
    async with opened:
        yield opened


def conversation(identity: OmniIdentity = ALICE, **fields: object) -> Conversation:
    return Conversation.model_validate({"identity": identity, **fields})


async def run_python(*code_and_args: str) -> str:
    """Run `python -c` in a new process and return what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", *code_and_args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


# The contract ----------------------------------------------------------------------------------------------------


async def test_a_created_conversation_reads_back_equal(store: ConversationStore) -> None:
    created = conversation(
        title="Revenue",
        messages=[{"role": "user", "content": "Revenue by region?"}],
        usage=Usage(input_tokens=7),
        metadata={"channel": "web"},
    )
    await store.create(created)
    assert await store.get(created.id) == created
    assert await store.get("conv_missing") is None


async def test_creating_an_existing_id_is_refused_and_keeps_the_first(store: ConversationStore) -> None:
    first = conversation(title="first")
    await store.create(first)
    with pytest.raises(ValueError, match=first.id):
        await store.create(conversation(id=first.id, title="second"))
    stored = await store.get(first.id)
    assert stored is not None and stored.title == "first"


async def test_save_writes_the_whole_record_and_stamps_it_later(store: ConversationStore) -> None:
    record = conversation()
    await store.create(record)
    created_stamp = record.updated_at

    record.messages.append({"role": "user", "content": "Revenue?"})
    record.omni_conversation_id = "oc_1"
    await store.save(record)

    assert record.updated_at > created_stamp
    assert await store.get(record.id) == record


async def test_save_creates_a_conversation_it_does_not_know(store: ConversationStore) -> None:
    record = conversation(title="new")
    await store.save(record)
    assert await store.get(record.id) == record


async def test_a_store_hands_out_copies_not_its_own_records(store: ConversationStore) -> None:
    record = conversation()
    await store.create(record)
    record.title = "changed but not saved"
    fetched = await store.get(record.id)
    assert fetched is not None and fetched.title is None
    fetched.messages.append({"role": "user", "content": "not saved either"})
    again = await store.get(record.id)
    assert again is not None and again.messages == []


async def test_a_save_cannot_rebind_a_conversation_to_another_user(store: ConversationStore) -> None:
    record = conversation(ALICE)
    await store.create(record)
    with pytest.raises(IdentityError):
        await store.save(conversation(BOB, id=record.id, title="hijacked"))
    stored = await store.get(record.id)
    assert stored is not None and stored.identity == ALICE and stored.title is None


async def test_list_puts_the_most_recently_saved_first(store: ConversationStore) -> None:
    first, second, third = conversation(title="1"), conversation(title="2"), conversation(BOB, title="3")
    for record in (first, second, third):
        await store.create(record)
    await store.save(first)

    assert [c.title for c in await store.list()] == ["1", "3", "2"]
    assert [c.title for c in await store.list(limit=2)] == ["1", "3"]
    assert [c.title for c in await store.list(external_id="cust-42")] == ["1", "2"]
    assert await store.list(external_id="cust-nobody") == []
    assert (await store.list(external_id="cust-43"))[0] == third


async def test_concurrent_saves_all_land_with_distinct_stamps(store: ConversationStore) -> None:
    records = [conversation(title=str(n)) for n in range(20)]
    async with asyncio.timeout(10):
        await asyncio.gather(*(store.create(record) for record in records))
        await asyncio.gather(*(store.save(record) for record in records))
    listed = await store.list()
    assert {c.id for c in listed} == {r.id for r in records}
    assert len({c.updated_at for c in listed}) == 20
    assert [c.updated_at for c in listed] == sorted((c.updated_at for c in listed), reverse=True)


async def test_list_refuses_a_limit_below_one(store: ConversationStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list(limit=0)


async def test_delete_forgets_a_conversation(store: ConversationStore) -> None:
    kept, deleted = conversation(), conversation()
    await store.create(kept)
    await store.create(deleted)
    assert await store.delete(deleted.id) is True
    assert await store.get(deleted.id) is None
    assert await store.delete(deleted.id) is False
    assert [c.id for c in await store.list()] == [kept.id]


async def test_artifacts_are_found_only_by_their_owner(store: ConversationStore) -> None:
    artifact = Artifact(owner="u-alice", tool="getData", columns=["region"], csv="region\nWest\n", row_count=1)
    await store.artifacts.put(artifact)
    assert await store.artifacts.get(artifact.id, owner="u-alice") == artifact
    assert await store.artifacts.get(artifact.id, owner="u-bob") is None
    assert await store.artifacts.get("res_missing", owner="u-alice") is None


async def test_putting_an_artifact_again_replaces_it(store: ConversationStore) -> None:
    artifact = Artifact(owner="u-alice", tool="getData", text="old")
    await store.artifacts.put(artifact)
    await store.artifacts.put(artifact.model_copy(update={"text": "new"}))
    fetched = await store.artifacts.get(artifact.id, owner="u-alice")
    assert fetched is not None and fetched.text == "new"


async def test_a_closed_store_refuses_to_work_and_closes_twice_quietly(store: ConversationStore) -> None:
    await store.aclose()
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("conv_1")
    assert "closed" in repr(store)


# SQLite ----------------------------------------------------------------------------------------------------------

_WRITE = """
import asyncio, sys
from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.stores import open_store
from omni_bridge.tools import Artifact

async def main():
    async with open_store("sqlite:///" + sys.argv[1]) as store:
        identity = OmniIdentity(external_id="cust-42", user_id="u-alice", server="https://acme.omniapp.co")
        record = Conversation(id="conv_other_process", identity=identity, title="from afar")
        record.messages.append({"role": "user", "content": "Revenue?"})
        await store.create(record)
        await store.artifacts.put(Artifact(id="res_far", owner="u-alice", tool="getData", text="42"))
        print(record.model_dump_json())

asyncio.run(main())
"""

_READ = """
import asyncio, sys
from omni_bridge.stores import open_store

async def main():
    async with open_store(sys.argv[1]) as store:
        record = await store.get(sys.argv[2])
        print(record.model_dump_json())

asyncio.run(main())
"""


async def test_a_conversation_written_by_another_process_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bridge.db"
    written = Conversation.model_validate_json(await run_python(_WRITE, str(path)))

    async with SqliteStore(path) as store:
        assert await store.get("conv_other_process") == written
        artifact = await store.artifacts.get("res_far", owner="u-alice")
        assert artifact is not None and artifact.text == "42"


async def test_a_conversation_saved_here_is_read_by_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    record = conversation(title="Revenue", messages=[{"role": "user", "content": "Revenue?"}], metadata={"n": 1})
    async with SqliteStore(path) as store:
        await store.create(record)
        record.title = "Revenue by region"
        await store.save(record)

    assert Conversation.model_validate_json(await run_python(_READ, str(path), record.id)) == record


async def test_the_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    async with SqliteStore(path):
        pass
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    finally:
        db.close()


async def test_reopening_a_store_keeps_its_data_and_its_order(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    older, newer = conversation(title="older"), conversation(title="newer")
    async with SqliteStore(path) as store:
        await store.create(older)
        await store.create(newer)
    async with SqliteStore(path) as store:
        await store.save(older)
        assert [c.title for c in await store.list()] == ["older", "newer"]


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (99)")
        db.commit()
    finally:
        db.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database, just notes " * 100, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notes\.db"):
        SqliteStore(path)


def test_a_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot create the directory"):
        SqliteStore(blocker / "data" / "bridge.db")


# open_store ------------------------------------------------------------------------------------------------------


async def test_open_store_reads_sqlite_urls_and_plain_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    opened = [
        open_store("sqlite:///relative/a.db"),
        open_store(f"sqlite:///{tmp_path / 'absolute' / 'b.db'}"),
        open_store(str(tmp_path / "plain" / "c.db")),
        open_store(tmp_path / "path-object" / "d.db"),
    ]
    try:
        paths = [store.path for store in opened if isinstance(store, SqliteStore)]
        assert paths == [
            Path("relative/a.db"),
            tmp_path / "absolute" / "b.db",
            tmp_path / "plain" / "c.db",
            tmp_path / "path-object" / "d.db",
        ]
        assert all(path.is_file() for path in paths)
    finally:
        for store in opened:
            await store.aclose()


@pytest.mark.parametrize("value", ["memory:", "redis://bridge:s3cret@db.internal/0", "sqlite://x.db", ""])
def test_open_store_refuses_what_it_does_not_know_without_echoing_secrets(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(value)
    assert "s3cret" not in str(caught.value)
    assert "sqlite:///" in str(caught.value)


def test_the_sqlite_store_files_are_json_records(tmp_path: Path) -> None:
    async def write() -> Conversation:
        async with SqliteStore(tmp_path / "bridge.db") as store:
            record = conversation(metadata={"k": [1, 2]})
            await store.create(record)
            return record

    record = asyncio.run(write())
    db = sqlite3.connect(tmp_path / "bridge.db")
    try:
        (raw,) = db.execute("SELECT record FROM conversations").fetchone()
    finally:
        db.close()
    assert json.loads(raw)["metadata"] == {"k": [1, 2]}
    assert Conversation.model_validate_json(raw) == record
