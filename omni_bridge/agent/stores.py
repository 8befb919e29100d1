"""Where conversations and result artifacts live: in memory, or in a SQLite file that outlives the process.

Every store has the same contract (`ConversationStore`): a conversation is written as one whole record, so a
reader never sees half a save; `save` stamps `updated_at` strictly later than any earlier stamp of the same
store, so `list` order is the order of the saves even when the clock does not move; and a save can never
rebind a conversation to another Omni user. Artifacts are kept beside the conversations, under the
`ArtifactStore` contract of the tools layer (an artifact is only found by its owner).

The SQLite backend uses the stdlib `sqlite3` in worker threads: one connection, used under a lock, in WAL
mode so readers in other processes are not blocked by a writer.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from omni_bridge._sqlite import open_sqlite, transaction
from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.exceptions import ConfigError, IdentityError
from omni_bridge.tools._artifacts import Artifact, ArtifactStore, MemoryArtifactStore

__all__ = ["ConversationStore", "MemoryConversationStore", "SqliteConversationStore", "open_store"]

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        external_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        server TEXT NOT NULL,
        updated_us INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX conversations_by_user ON conversations (external_id, updated_us)",
    "CREATE INDEX conversations_by_time ON conversations (updated_us)",
    """CREATE TABLE artifacts (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        record TEXT NOT NULL
    )""",
)
"""Version 1. `record` columns hold the whole object as JSON; the other columns exist to be searched."""
_SELECT = "SELECT record FROM conversations"


class ConversationStore(Protocol):
    """What every conversation store does. Use one as an async context manager, or call `aclose()`."""

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifacts kept with the conversations."""
        ...

    async def create(self, conversation: Conversation) -> None:
        """Store a new conversation and stamp its `updated_at`.

        Raises:
            ValueError: a conversation with the same id exists.
        """
        ...

    async def get(self, conversation_id: str) -> Conversation | None:
        """The conversation as last saved (a copy), or `None`."""
        ...

    async def save(self, conversation: Conversation) -> None:
        """Write the whole conversation (created if new) and stamp its `updated_at`.

        Raises:
            IdentityError: the stored conversation of that id is bound to another Omni user.
        """
        ...

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        """The most recently saved conversations first, optionally only those of one end user."""
        ...

    async def delete(self, conversation_id: str) -> bool:
        """Forget a conversation; `True` when it existed."""
        ...

    async def aclose(self) -> None:
        """Release the store; closing twice is harmless, using it afterwards raises `RuntimeError`."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _next_stamp_us(last_us: int | None) -> int:
    """Now, or a microsecond after the last stamp when the clock has not moved past it."""
    now_us = _to_us(datetime.now(UTC))
    return now_us if last_us is None or now_us > last_us else last_us + 1


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit!r}")


def _duplicate(conversation_id: str) -> ValueError:
    return ValueError(f"conversation {conversation_id!r} already exists")


def _rebound(conversation_id: str) -> IdentityError:
    return IdentityError(f"conversation {conversation_id!r} belongs to another user; a save cannot rebind it")


class _Lifecycle:
    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class MemoryConversationStore(_Lifecycle):
    """Conversations in a dict: the library default, gone when the process ends.

    Args:
        artifacts: where artifacts go; a `MemoryArtifactStore` with its default size bound if not given.
    """

    def __init__(self, *, artifacts: ArtifactStore | None = None) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._artifacts: ArtifactStore = artifacts if artifacts is not None else MemoryArtifactStore()
        self._last_stamp_us: int | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryConversationStore conversations={len(self._conversations)} {state}>"

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    async def create(self, conversation: Conversation) -> None:
        self._check_open()
        if conversation.id in self._conversations:
            raise _duplicate(conversation.id)
        self._write(conversation)

    async def get(self, conversation_id: str) -> Conversation | None:
        self._check_open()
        stored = self._conversations.get(conversation_id)
        return None if stored is None else stored.model_copy(deep=True)

    async def save(self, conversation: Conversation) -> None:
        self._check_open()
        stored = self._conversations.get(conversation.id)
        if stored is not None and not stored.is_bound_to(conversation.identity):
            raise _rebound(conversation.id)
        self._write(conversation)

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        self._check_open()
        _check_limit(limit)
        found = [
            conversation
            for conversation in self._conversations.values()
            if external_id is None or conversation.identity.external_id == external_id
        ]
        found.sort(key=lambda conversation: (conversation.updated_at, conversation.id), reverse=True)
        return [conversation.model_copy(deep=True) for conversation in found[:limit]]

    async def delete(self, conversation_id: str) -> bool:
        self._check_open()
        return self._conversations.pop(conversation_id, None) is not None

    def _write(self, conversation: Conversation) -> None:
        self._last_stamp_us = _next_stamp_us(self._last_stamp_us)
        stamp = _from_us(self._last_stamp_us)
        self._conversations[conversation.id] = conversation.model_copy(deep=True, update={"updated_at": stamp})
        conversation.updated_at = stamp


class SqliteConversationStore(_Lifecycle):
    """Conversations and artifacts in a SQLite file: nothing is lost when the process restarts.

    The file (and its directory) is created when missing and opened at once, so a bad path fails here
    rather than at the first question. Several processes may share the file.

    Args:
        path: the database file.

    Raises:
        ConfigError: the file cannot be created or opened, is not a SQLite database, or was written by a newer
            omni-bridge.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path).expanduser()
        self._lock = threading.Lock()
        """Serialises use of `_db`: `asyncio.to_thread` may run consecutive calls on different threads."""
        self._db = open_sqlite(self._path, what="conversation store", schema=_SCHEMA, version=_SCHEMA_VERSION)
        self._artifacts = _SqliteArtifactStore(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SqliteConversationStore path={str(self._path)!r} {state}>"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._close)

    async def create(self, conversation: Conversation) -> None:
        record = conversation.model_dump(mode="json")

        def create(db: sqlite3.Connection) -> int:
            with transaction(db):
                if db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation.id,)).fetchone():
                    raise _duplicate(conversation.id)
                return _upsert(db, conversation.identity, record)

        conversation.updated_at = _from_us(await self._run(create))

    async def get(self, conversation_id: str) -> Conversation | None:
        rows = await self._run(lambda db: db.execute(_SELECT + " WHERE id = ?", (conversation_id,)).fetchall())
        return Conversation.model_validate_json(rows[0][0]) if rows else None

    async def save(self, conversation: Conversation) -> None:
        record = conversation.model_dump(mode="json")

        def save(db: sqlite3.Connection) -> int:
            with transaction(db):
                row = db.execute(
                    "SELECT external_id, user_id, server FROM conversations WHERE id = ?", (conversation.id,)
                ).fetchone()
                if row is not None:
                    bound = OmniIdentity(external_id=row[0], user_id=row[1], server=row[2])
                    if not conversation.is_bound_to(bound):
                        raise _rebound(conversation.id)
                return _upsert(db, conversation.identity, record)

        conversation.updated_at = _from_us(await self._run(save))

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        _check_limit(limit)
        where, params = (" WHERE external_id = ?", (external_id,)) if external_id is not None else ("", ())
        query = _SELECT + where + " ORDER BY updated_us DESC, id DESC LIMIT ?"
        rows = await self._run(lambda db: db.execute(query, (*params, limit)).fetchall())
        return [Conversation.model_validate_json(row[0]) for row in rows]

    async def delete(self, conversation_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            with transaction(db):
                return db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

        return await self._run(delete)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        self._check_open()
        return await asyncio.to_thread(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            # Checked again under the lock: `aclose` may have started while this call waited for a thread.
            self._check_open()
            return work(self._db)

    def _close(self) -> None:
        with self._lock:
            self._db.close()


class _SqliteArtifactStore:
    """The artifact table of a `SqliteConversationStore`, on its connection."""

    def __init__(self, store: SqliteConversationStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"<SqliteArtifactStore of {self._store!r}>"

    async def put(self, artifact: Artifact) -> None:
        record = artifact.model_dump_json()

        def put(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.execute(
                    "INSERT INTO artifacts (id, owner, record) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, record = excluded.record",
                    (artifact.id, artifact.owner, record),
                )

        await self._store._run(put)

    async def get(self, artifact_id: str, *, owner: str) -> Artifact | None:
        query = "SELECT record FROM artifacts WHERE id = ? AND owner = ?"
        rows = await self._store._run(lambda db: db.execute(query, (artifact_id, owner)).fetchall())
        return Artifact.model_validate_json(rows[0][0]) if rows else None


def _upsert(db: sqlite3.Connection, identity: OmniIdentity, record: dict[str, Any]) -> int:
    """Write `record` stamped after every stored conversation; return the stamp. Runs inside a transaction."""
    (last_us,) = db.execute("SELECT MAX(updated_us) FROM conversations").fetchone()
    stamp_us = _next_stamp_us(last_us)
    record = {**record, "updated_at": _from_us(stamp_us).isoformat()}
    db.execute(
        "INSERT INTO conversations (id, external_id, user_id, server, updated_us, record) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET updated_us = excluded.updated_us, record = excluded.record",
        (record["id"], identity.external_id, identity.user_id, identity.server, stamp_us, json.dumps(record)),
    )
    return stamp_us


def open_store(url_or_path: str | os.PathLike[str]) -> ConversationStore:
    """Open the store a setting names.

    | value | store |
    |---|---|
    | `memory:` | `MemoryConversationStore` |
    | `sqlite:///relative/file.db`, `sqlite:////absolute/file.db` | `SqliteConversationStore` |
    | any other text without `://`, or a path object | `SqliteConversationStore` at that path |

    Raises:
        ConfigError: the scheme is not one of these, or the SQLite file cannot be opened.
    """
    if not isinstance(url_or_path, str):
        return SqliteConversationStore(url_or_path)
    value = url_or_path.strip()
    if value in ("memory:", "memory://"):
        return MemoryConversationStore()
    if value.startswith("sqlite:"):
        if not value.startswith("sqlite:///") or value == "sqlite:///":
            raise ConfigError("a SQLite store URL reads `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`")
        return SqliteConversationStore(value.removeprefix("sqlite:///"))
    if "://" in value or not value:
        # Only the scheme is named: the rest of a URL (a PostgreSQL one, say) may hold a password.
        scheme = value.split("://", 1)[0] if value else ""
        raise ConfigError(
            f"unknown conversation store {scheme + '://' if scheme else '(empty)'}; "
            "use `memory:`, `sqlite:///path/to/file.db` or a file path"
        )
    return SqliteConversationStore(value)
