"""The two files of older versions (`conversations.db`, `service.db`) move into the one store file on first open."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.stores import STORE_FILE, SqliteStore, open_store
from omni_bridge.tools import Artifact
from tests.stores.service_contract import ALICE, answer, started

IDENTITY = OmniIdentity(external_id="alice", user_id="u-alice", server="sandbox:embedded")

# The tables of the two files as older versions made them (schema version 1 of each).
_OLD_CONVERSATIONS = (
    """CREATE TABLE conversations (
        id TEXT PRIMARY KEY, external_id TEXT NOT NULL, user_id TEXT NOT NULL, server TEXT NOT NULL,
        updated_us INTEGER NOT NULL, record TEXT NOT NULL
    )""",
    "CREATE INDEX conversations_by_user ON conversations (external_id, updated_us)",
    "CREATE INDEX conversations_by_time ON conversations (updated_us)",
    "CREATE TABLE artifacts (id TEXT PRIMARY KEY, owner TEXT NOT NULL, record TEXT NOT NULL)",
)
_OLD_SERVICE = (
    """CREATE TABLE threads (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, end_user TEXT NOT NULL, updated_us INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX threads_by_owner ON threads (tenant, end_user, updated_us)",
    """CREATE TABLE messages (
        pos INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, thread_id TEXT NOT NULL,
        tenant TEXT NOT NULL, end_user TEXT NOT NULL, record TEXT NOT NULL
    )""",
    "CREATE INDEX messages_by_thread ON messages (thread_id, pos)",
    """CREATE TABLE responses (
        id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, tenant TEXT NOT NULL, end_user TEXT NOT NULL,
        status TEXT NOT NULL, lease_us INTEGER, version INTEGER NOT NULL DEFAULT 0, record TEXT NOT NULL
    )""",
    "CREATE INDEX responses_running ON responses (status, lease_us)",
    """CREATE TABLE events (
        response_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (response_id, seq)
    )""",
)


def _old_file(path: Path, schema: Sequence[str], rows_from: Path, tables: Sequence[str]) -> None:
    """A file of the older layout at `path`, holding the rows of `tables` copied from the file `rows_from`."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")
        for statement in schema:
            db.execute(statement)
        db.execute("ATTACH DATABASE ? AS source", (str(rows_from),))
        for table in tables:
            db.execute(f"INSERT INTO main.{table} SELECT * FROM source.{table}")
        db.execute("DETACH DATABASE source")
    finally:
        db.close()


async def _records(scratch: Path) -> tuple[Conversation, Artifact, str, str]:
    """Write a conversation, an artifact and an answered thread into `scratch`; what to look for afterwards."""
    async with SqliteStore(scratch) as store:
        thread, response = await started(store)
        assert await store.append(response.id, "w1", [{"type": "progress", "message": "working"}])
        assert await store.finish(response.id, "w1", "succeeded", message=answer(response))
        conversation = Conversation(id=thread.id, identity=IDENTITY, engine="omni", title="revenue")
        conversation.messages.append({"role": "user", "content": "revenue by region"})
        await store.create(conversation)
        artifact = Artifact(owner="u-alice", tool="getData", text="42")
        await store.artifacts.put(artifact)
    return conversation, artifact, thread.id, response.id


async def _legacy_data_dir(tmp_path: Path) -> tuple[Path, Conversation, Artifact, str, str]:
    scratch = tmp_path / "scratch.db"
    conversation, artifact, thread_id, response_id = await _records(scratch)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _old_file(data_dir / "conversations.db", _OLD_CONVERSATIONS, scratch, ("conversations", "artifacts"))
    _old_file(data_dir / "service.db", _OLD_SERVICE, scratch, ("threads", "messages", "responses", "events"))
    return data_dir, conversation, artifact, thread_id, response_id


async def test_the_two_old_files_move_into_one_and_are_kept_renamed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir, conversation, artifact, thread_id, response_id = await _legacy_data_dir(tmp_path)

    with caplog.at_level(logging.INFO, logger="omni_bridge.stores"):
        store = open_store(load_settings(None, bridge_data_dir=data_dir))
    async with store:
        assert await store.get(conversation.id) == conversation
        assert await store.artifacts.get(artifact.id, owner="u-alice") == artifact
        thread = await store.get_thread(ALICE, thread_id)
        assert thread is not None and thread.current_response_id == response_id
        messages = await store.list_messages(ALICE, thread_id)
        assert messages is not None and [m.role for m in messages] == ["user", "assistant"]
        finished = await store.get_response(ALICE, response_id)
        assert finished is not None and finished.status == "succeeded"
        events = await store.events_after(ALICE, response_id, 0)
        assert events is not None and [e.event["message"] for e in events] == ["working"]

    assert sorted(p.name for p in data_dir.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        STORE_FILE,
        "conversations.db.migrated",
        "service.db.migrated",
    ]
    assert "conversations.db and service.db" in caplog.text and "1 conversations" in caplog.text


async def test_one_old_file_alone_moves_too(tmp_path: Path) -> None:
    data_dir, conversation, _artifact, _thread_id, _response_id = await _legacy_data_dir(tmp_path)
    (data_dir / "service.db").unlink()
    async with open_store(load_settings(None, bridge_data_dir=data_dir)) as store:
        assert await store.get(conversation.id) == conversation
        assert await store.list_threads(ALICE) == []
    assert (data_dir / "conversations.db.migrated").is_file()


async def test_a_failed_move_keeps_the_old_files_and_leaves_no_new_one(tmp_path: Path) -> None:
    data_dir, *_ = await _legacy_data_dir(tmp_path)
    (data_dir / "service.db").write_bytes(b"not a database " * 100)
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}

    with pytest.raises(ConfigError, match="BRIDGE_STORE_URL: cannot move the records"):
        open_store(load_settings(None, bridge_data_dir=data_dir))
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before  # nothing renamed, no new file


async def test_once_the_one_file_exists_old_files_are_left_alone(tmp_path: Path) -> None:
    data_dir, conversation, *_ = await _legacy_data_dir(tmp_path)
    await SqliteStore(data_dir / STORE_FILE).aclose()
    async with open_store(load_settings(None, bridge_data_dir=data_dir)) as store:
        assert await store.get(conversation.id) is None
    assert (data_dir / "conversations.db").is_file() and (data_dir / "service.db").is_file()


async def test_an_empty_new_file_does_not_hold_the_old_records_back(tmp_path: Path) -> None:
    data_dir, conversation, *_ = await _legacy_data_dir(tmp_path)
    (data_dir / STORE_FILE).touch()  # what a stray `sqlite3.connect(path)` leaves: zero bytes, no tables
    async with open_store(load_settings(None, bridge_data_dir=data_dir)) as store:
        assert await store.get(conversation.id) == conversation
    assert (data_dir / "conversations.db.migrated").is_file() and (data_dir / "service.db.migrated").is_file()


async def test_an_old_file_named_by_the_store_url_is_opened_in_place_with_the_tables_it_lacked(tmp_path: Path) -> None:
    data_dir, _conversation, _artifact, thread_id, _response_id = await _legacy_data_dir(tmp_path)
    old = data_dir / "service.db"
    async with open_store(load_settings(None, bridge_store_url=str(old), bridge_data_dir=data_dir)) as store:
        assert await store.get_thread(ALICE, thread_id) is not None
        kept = Conversation(id=thread_id, identity=IDENTITY, engine="omni")
        await store.create(kept)
        assert await store.get(thread_id) == kept
