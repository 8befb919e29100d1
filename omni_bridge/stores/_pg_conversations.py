"""The conversations and artifacts of `PostgresStore`: their tables and the row-level steps, on the caller's connection.

The conversation-store contract, kept with several processes writing at once:

- a conversation is one JSONB record written by one statement, so a reader never sees half a save;
- `updated_at` stamps come from a one-row clock table updated inside the saving transaction
  (`GREATEST(last + 1 µs, now)`): its row lock orders concurrent saves, so every stamp is strictly later than
  any earlier one, across processes, and `list` order is the order of the saves;
- the rule that a save never rebinds a conversation to another Omni user is part of the upsert itself
  (`ON CONFLICT … DO UPDATE … WHERE` the stored user and server match), so two first saves racing on one id
  cannot both win.

Artifacts live in their own table, found by id *and* owner. A thread of the service and its conversation share
their id; a trigger keeps them one row family: deleting a thread deletes its conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, LiteralString

from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.stores._pg import AsyncConnection, Schema, jsonb, one
from omni_bridge.stores._protocol import PruneCounts
from omni_bridge.stores._rules import from_us, now, rebound_conversation, to_us
from omni_bridge.tools import Artifact

__all__ = [
    "PRUNE_BATCH",
    "SCHEMA",
    "create_conversation",
    "delete_conversation",
    "get_artifact",
    "get_conversation",
    "list_conversations",
    "prune_artifacts",
    "prune_lone_conversations",
    "put_artifact",
    "save_conversation",
]

SCHEMA = Schema(
    component="conversations",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS bridge_conversations (
            id TEXT PRIMARY KEY,
            external_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            server_key TEXT NOT NULL,
            updated_us BIGINT NOT NULL,
            record JSONB NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS bridge_conversations_by_user ON bridge_conversations (external_id, updated_us)",
        "CREATE INDEX IF NOT EXISTS bridge_conversations_by_time ON bridge_conversations (updated_us)",
        """CREATE TABLE IF NOT EXISTS bridge_conversation_clock (
            one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
            last_us BIGINT NOT NULL
        )""",
        "INSERT INTO bridge_conversation_clock (one, last_us) VALUES (true, 0) ON CONFLICT DO NOTHING",
        """CREATE TABLE IF NOT EXISTS bridge_artifacts (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            record JSONB NOT NULL
        )""",
        # Added after version 1 shipped (so still version 1: older workers ignore it): when an artifact was made,
        # for retention to find old ones without reading every record. Rows an older worker writes get it here.
        "ALTER TABLE bridge_artifacts ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ",
        "UPDATE bridge_artifacts SET created_at = (record->>'created_at')::timestamptz WHERE created_at IS NULL",
        "CREATE INDEX IF NOT EXISTS bridge_artifacts_by_time ON bridge_artifacts (created_at)",
        """CREATE OR REPLACE FUNCTION bridge_thread_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM bridge_conversations WHERE id = OLD.id;
            RETURN OLD;
        END $$""",
        """DO $$ BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM pg_trigger WHERE tgrelid = 'bridge_threads'::regclass
                AND tgname = 'bridge_threads_delete_their_conversation'
            ) THEN
                CREATE TRIGGER bridge_threads_delete_their_conversation AFTER DELETE ON bridge_threads
                FOR EACH ROW EXECUTE FUNCTION bridge_thread_deleted();
            END IF;
        END $$""",
    ),
)
"""Made after the service's tables (the trigger is on `bridge_threads`). `server_key` is the Omni instance as
`Conversation.is_bound_to` compares it (no trailing slash, lower case)."""

_UPSERT: LiteralString = (
    "INSERT INTO bridge_conversations (id, external_id, user_id, server_key, updated_us, record) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET updated_us = excluded.updated_us, record = excluded.record "
    "WHERE bridge_conversations.user_id = excluded.user_id "
    "AND bridge_conversations.server_key = excluded.server_key "
    "RETURNING id"
)
_CREATE: LiteralString = (
    "INSERT INTO bridge_conversations (id, external_id, user_id, server_key, updated_us, record) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id"
)


def _server_key(identity: OmniIdentity) -> str:
    return identity.server.rstrip("/").lower()


async def create_conversation(conn: AsyncConnection[Any], conversation: Conversation) -> datetime | None:
    """Write a new conversation; its stamp, or `None` when the id is taken."""
    return await _write(conn, _CREATE, conversation)


async def save_conversation(conn: AsyncConnection[Any], conversation: Conversation) -> datetime:
    """Write the whole conversation (created if new); its stamp. Raises `IdentityError` on a rebind."""
    stamp = await _write(conn, _UPSERT, conversation)
    if stamp is None:
        raise rebound_conversation(conversation.id)
    return stamp


async def get_conversation(conn: AsyncConnection[Any], conversation_id: str) -> Conversation | None:
    row = await one(conn, "SELECT record FROM bridge_conversations WHERE id = %s", (conversation_id,))
    return None if row is None else Conversation.model_validate(row[0])


async def list_conversations(conn: AsyncConnection[Any], external_id: str | None, limit: int) -> list[Conversation]:
    cursor = await conn.execute(
        "SELECT record FROM bridge_conversations WHERE (%s::text IS NULL OR external_id = %s::text) "
        "ORDER BY updated_us DESC, id DESC LIMIT %s",
        (external_id, external_id, limit),
    )
    return [Conversation.model_validate(row[0]) for row in await cursor.fetchall()]


async def delete_conversation(conn: AsyncConnection[Any], conversation_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM bridge_conversations WHERE id = %s", (conversation_id,))
    return cursor.rowcount > 0


async def put_artifact(conn: AsyncConnection[Any], artifact: Artifact) -> None:
    await conn.execute(
        "INSERT INTO bridge_artifacts (id, owner, created_at, record) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, created_at = excluded.created_at, "
        "record = excluded.record",
        (artifact.id, artifact.owner, artifact.created_at, jsonb(artifact.model_dump(mode="json"))),
    )


async def get_artifact(conn: AsyncConnection[Any], artifact_id: str, owner: str) -> Artifact | None:
    row = await one(conn, "SELECT record FROM bridge_artifacts WHERE id = %s AND owner = %s", (artifact_id, owner))
    return None if row is None else Artifact.model_validate(row[0])


PRUNE_BATCH = 500
"""Records one retention step deletes at most: each step is one transaction, so other writers wait for one batch."""


async def prune_lone_conversations(
    conn: AsyncConnection[Any], before: datetime, after: str, *, delete: bool
) -> tuple[PruneCounts, str | None]:
    """The next batch (ids above `after`) of conversations last saved before `before` that are no thread's;
    a thread's conversation goes with its thread. Returns the counts and the next `after` (`None`: done)."""
    cursor = await conn.execute(
        ("SELECT id FROM bridge_conversations c WHERE updated_us < %s AND id > %s "
         "AND NOT EXISTS (SELECT 1 FROM bridge_threads t WHERE t.id = c.id) ORDER BY id LIMIT %s")
        + (" FOR UPDATE SKIP LOCKED" if delete else ""),
        (to_us(before), after, PRUNE_BATCH),
    )  # fmt: skip
    ids = [row[0] for row in await cursor.fetchall()]
    if not ids:
        return PruneCounts(), None
    if delete:
        await conn.execute("DELETE FROM bridge_conversations WHERE id = ANY(%s)", (ids,))
    return PruneCounts(conversations=len(ids)), ids[-1] if len(ids) == PRUNE_BATCH else None


async def prune_artifacts(
    conn: AsyncConnection[Any], before: datetime, after: str, *, delete: bool
) -> tuple[PruneCounts, str | None]:
    """The next batch of artifacts made before `before` (found by their `created_at` column)."""
    cursor = await conn.execute(
        ("SELECT id FROM bridge_artifacts WHERE created_at < %s AND id > %s ORDER BY id LIMIT %s")
        + (" FOR UPDATE SKIP LOCKED" if delete else ""),
        (before, after, PRUNE_BATCH),
    )  # fmt: skip
    ids = [row[0] for row in await cursor.fetchall()]
    if not ids:
        return PruneCounts(), None
    if delete:
        await conn.execute("DELETE FROM bridge_artifacts WHERE id = ANY(%s)", (ids,))
    return PruneCounts(artifacts=len(ids)), ids[-1] if len(ids) == PRUNE_BATCH else None


async def _write(conn: AsyncConnection[Any], query: LiteralString, conversation: Conversation) -> datetime | None:
    """Stamp and write `conversation` with `query` (create or upsert); the stamp, or `None` if nothing was written.

    The clock row stays locked until the transaction ends, so stamps are handed out in commit order.
    """
    row = await one(
        conn,
        "UPDATE bridge_conversation_clock SET last_us = GREATEST(last_us + 1, %s) RETURNING last_us",
        (to_us(now()),),
    )
    assert row is not None  # the schema inserts the clock's one row
    stamp_us: int = row[0]
    stamp = from_us(stamp_us)
    record = {**conversation.model_dump(mode="json"), "updated_at": stamp.isoformat()}
    identity = conversation.identity
    written = await one(
        conn,
        query,
        (conversation.id, identity.external_id, identity.user_id, _server_key(identity), stamp_us, jsonb(record)),
    )
    return None if written is None else stamp
