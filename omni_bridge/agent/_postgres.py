"""`PostgresConversationStore`: conversations and artifacts in PostgreSQL, shared by every worker of a service.

The same contract as the memory and SQLite stores (`omni_bridge.agent.stores.ConversationStore`), kept with
several processes writing at once:

- a conversation is one JSONB record written by one statement, so a reader never sees half a save;
- `updated_at` stamps come from a one-row clock table updated inside the saving transaction
  (`GREATEST(last + 1 µs, now)`): its row lock orders concurrent saves, so every stamp is strictly later than
  any earlier one, across processes, and `list` order is the order of the saves;
- the rule that a save never rebinds a conversation to another Omni user is part of the upsert itself
  (`ON CONFLICT … DO UPDATE … WHERE` the stored user and server match), so two first saves racing on one id
  cannot both win.

Artifacts live in their own table, found by id *and* owner. The driver (psycopg 3) and the pool come from
`omni_bridge._pg`; the store connects on first use and creates its tables when missing.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, LiteralString, Self

from omni_bridge._pg import Database, Schema, jsonb
from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.exceptions import IdentityError
from omni_bridge.tools._artifacts import Artifact, ArtifactStore

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["PostgresConversationStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

_SCHEMA = Schema(
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
    ),
)
"""`server_key` is the Omni instance as `Conversation.is_bound_to` compares it (no trailing slash, lower case)."""

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


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class PostgresConversationStore:
    """Conversations and their artifacts in a PostgreSQL database that several processes share.

    To keep the tables in their own schema, name it in the URL:
    `postgresql://…/db?options=-csearch_path%3Dbridge` (the schema must exist).

    Args:
        url: a `postgresql://` URL (libpq syntax); its password never appears in reprs or errors.
        max_connections: the connection pool's size at most.
        open_timeout: seconds to wait for the database when the store first connects.

    Raises:
        ConfigError: the URL is not a PostgreSQL URL, or the `postgres` extra (psycopg) is not installed; at
            first use, the database cannot be reached or was set up by a newer omni-bridge.
    """

    def __init__(self, url: str, *, max_connections: int = 10, open_timeout: float = 10.0) -> None:
        self._db = Database(url, _SCHEMA, max_connections=max_connections, open_timeout=open_timeout)
        self._artifacts = _PostgresArtifactStore(self)

    def __repr__(self) -> str:
        return f"<PostgresConversationStore {self._db.description} {'closed' if self._db.closed else 'open'}>"

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    async def open(self) -> None:
        """Connect and create the tables when missing (otherwise done by the first call that needs it)."""
        await self._db.open()

    async def aclose(self) -> None:
        await self._db.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def create(self, conversation: Conversation) -> None:
        async with self._db.transaction() as conn:
            stamp = await _write(conn, _CREATE, conversation)
            if stamp is None:
                raise ValueError(f"conversation {conversation.id!r} already exists")
        conversation.updated_at = stamp

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._db.connection() as conn:
            cursor = await conn.execute("SELECT record FROM bridge_conversations WHERE id = %s", (conversation_id,))
            row = await cursor.fetchone()
        return None if row is None else Conversation.model_validate(row[0])

    async def save(self, conversation: Conversation) -> None:
        async with self._db.transaction() as conn:
            stamp = await _write(conn, _UPSERT, conversation)
            if stamp is None:
                raise IdentityError(
                    f"conversation {conversation.id!r} belongs to another user; a save cannot rebind it"
                )
        conversation.updated_at = stamp

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        if limit < 1:
            raise ValueError(f"`limit` must be at least 1, got {limit!r}")
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT record FROM bridge_conversations WHERE (%s::text IS NULL OR external_id = %s::text) "
                "ORDER BY updated_us DESC, id DESC LIMIT %s",
                (external_id, external_id, limit),
            )
            rows = await cursor.fetchall()
        return [Conversation.model_validate(row[0]) for row in rows]

    async def delete(self, conversation_id: str) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM bridge_conversations WHERE id = %s", (conversation_id,))
            return cursor.rowcount > 0

    async def _put_artifact(self, artifact: Artifact) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO bridge_artifacts (id, owner, record) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, record = excluded.record",
                (artifact.id, artifact.owner, jsonb(artifact.model_dump(mode="json"))),
            )

    async def _get_artifact(self, artifact_id: str, owner: str) -> Artifact | None:
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT record FROM bridge_artifacts WHERE id = %s AND owner = %s", (artifact_id, owner)
            )
            row = await cursor.fetchone()
        return None if row is None else Artifact.model_validate(row[0])


class _PostgresArtifactStore:
    """The artifact table of a `PostgresConversationStore`, on its pool."""

    def __init__(self, store: PostgresConversationStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"<PostgresArtifactStore of {self._store!r}>"

    async def put(self, artifact: Artifact) -> None:
        await self._store._put_artifact(artifact)

    async def get(self, artifact_id: str, *, owner: str) -> Artifact | None:
        return await self._store._get_artifact(artifact_id, owner)


async def _write(conn: AsyncConnection[Any], query: LiteralString, conversation: Conversation) -> datetime | None:
    """Stamp and write `conversation` with `query` (create or upsert); the stamp, or `None` if nothing was written.

    The clock row stays locked until the transaction ends, so stamps are handed out in commit order.
    """
    now_us = (datetime.now(UTC) - _EPOCH) // _ONE_MICROSECOND
    cursor = await conn.execute(
        "UPDATE bridge_conversation_clock SET last_us = GREATEST(last_us + 1, %s) RETURNING last_us", (now_us,)
    )
    row = await cursor.fetchone()
    assert row is not None  # the schema inserts the clock's one row
    stamp_us: int = row[0]
    stamp = _from_us(stamp_us)
    record = {**conversation.model_dump(mode="json"), "updated_at": stamp.isoformat()}
    identity = conversation.identity
    cursor = await conn.execute(
        query,
        (conversation.id, identity.external_id, identity.user_id, _server_key(identity), stamp_us, jsonb(record)),
    )
    return None if await cursor.fetchone() is None else stamp
