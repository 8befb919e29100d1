"""The tables of the SQLite store file, and the row-level work on the service's records its transactions are made of.

Kept apart from `SqliteStore` (the async face, threads and locks) so each reads on its own: here every function
takes the connection and runs synchronously, inside the caller's transaction where it writes. Records are kept
whole as JSON (`record` columns); the other columns exist to be searched. A thread and its conversation share
their id, and a trigger keeps them one row family: deleting a thread deletes its conversation.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from omni_bridge.stores._protocol import PruneCounts
from omni_bridge.stores._records import (
    ACTIVE_STATUSES,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ResponseStatus,
    ThreadRecord,
)
from omni_bridge.stores._rules import from_us, next_stamp_us, now, stored_response, to_us, without_thinking
from omni_bridge.stores._sqlite import open_reader, open_sqlite

__all__ = [
    "SETTING",
    "end_response",
    "get_message",
    "get_response",
    "get_thread",
    "held",
    "insert_message",
    "insert_response",
    "insert_thread",
    "open_database",
    "open_read_connection",
    "prune_artifacts",
    "prune_lone_conversations",
    "prune_threads",
    "save_response",
    "thread_if_idle",
    "touch_thread",
]

SETTING = "BRIDGE_STORE_URL"
"""The variable that chooses the file, named in every message about it."""
_WHAT = "bridge store"
_SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conversations (
        id TEXT PRIMARY KEY,
        external_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        server TEXT NOT NULL,
        updated_us INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (external_id, updated_us)",
    "CREATE INDEX IF NOT EXISTS conversations_by_time ON conversations (updated_us)",
    """CREATE TABLE IF NOT EXISTS artifacts (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        record TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS threads (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        end_user TEXT NOT NULL,
        updated_us INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS threads_by_owner ON threads (tenant, end_user, updated_us)",
    "CREATE INDEX IF NOT EXISTS threads_by_time ON threads (updated_us)",
    """CREATE TRIGGER IF NOT EXISTS threads_delete_their_conversation AFTER DELETE ON threads
    BEGIN DELETE FROM conversations WHERE id = OLD.id; END""",
    """CREATE TABLE IF NOT EXISTS messages (
        pos INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        end_user TEXT NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (thread_id, pos)",
    """CREATE TABLE IF NOT EXISTS responses (
        id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        end_user TEXT NOT NULL,
        status TEXT NOT NULL,
        lease_us INTEGER,
        version INTEGER NOT NULL DEFAULT 0,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS responses_running ON responses (status, lease_us)",
    "CREATE INDEX IF NOT EXISTS responses_by_thread ON responses (thread_id)",
    """CREATE TABLE IF NOT EXISTS events (
        response_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (response_id, seq)
    )""",
)
"""Version 1 of the one-file layout; a file of the older two-file layout (conversations or service records
only, also version 1) gets the tables it lacks when opened, and any file the indexes added since (retention
finds old threads by time and their responses by thread)."""

PRUNE_BATCH = 500
"""Records one retention step looks at: each step is one transaction, so other writers wait for one batch only."""


def get_thread(db: sqlite3.Connection, owner: Owner, thread_id: str) -> ThreadRecord | None:
    row = db.execute(
        "SELECT record FROM threads WHERE id = ? AND tenant = ? AND end_user = ?", (thread_id, owner.tenant, owner.user)
    ).fetchone()
    return None if row is None else ThreadRecord.model_validate_json(row[0])


def get_message(db: sqlite3.Connection, owner: Owner, message_id: str) -> MessageRecord | None:
    row = db.execute(
        "SELECT record FROM messages WHERE id = ? AND tenant = ? AND end_user = ?",
        (message_id, owner.tenant, owner.user),
    ).fetchone()
    return None if row is None else MessageRecord.model_validate_json(row[0])


def get_response(db: sqlite3.Connection, response_id: str, owner: Owner | None = None) -> ResponseRecord | None:
    if owner is None:
        row = db.execute("SELECT record FROM responses WHERE id = ?", (response_id,)).fetchone()
    else:
        row = db.execute(
            "SELECT record FROM responses WHERE id = ? AND tenant = ? AND end_user = ?",
            (response_id, owner.tenant, owner.user),
        ).fetchone()
    return None if row is None else ResponseRecord.model_validate_json(row[0])


def held(db: sqlite3.Connection, response_id: str, worker: str) -> ResponseRecord | None:
    """The response while `worker` holds its lease (running, claimed by it, not yet expired by the reaper)."""
    response = get_response(db, response_id)
    if response is None or response.status != "running" or response.worker != worker:
        return None
    return response


def thread_if_idle(db: sqlite3.Connection, owner: Owner, thread_id: str) -> ThreadRecord | None:
    """The thread, unless it is not the owner's or its current response is still active."""
    thread = get_thread(db, owner, thread_id)
    if thread is None:
        return None
    if thread.current_response_id is not None:
        row = db.execute("SELECT status FROM responses WHERE id = ?", (thread.current_response_id,)).fetchone()
        if row is not None and row[0] in ACTIVE_STATUSES:
            return None
    return thread


def _stamp(db: sqlite3.Connection) -> int:
    """Now, or a microsecond after the latest thread stamp: thread order is the order of the writes."""
    (last,) = db.execute("SELECT MAX(updated_us) FROM threads").fetchone()
    return next_stamp_us(last)


def insert_thread(db: sqlite3.Connection, thread: ThreadRecord, response: ResponseRecord) -> None:
    if db.execute("SELECT 1 FROM threads WHERE id = ?", (thread.id,)).fetchone():
        raise ValueError(f"thread {thread.id!r} already exists")
    stamp = _stamp(db)
    record = thread.model_copy(update={"current_response_id": response.id, "updated_at": from_us(stamp)})
    db.execute(
        "INSERT INTO threads (id, tenant, end_user, updated_us, record) VALUES (?, ?, ?, ?, ?)",
        (thread.id, thread.owner.tenant, thread.owner.user, stamp, record.model_dump_json()),
    )


def touch_thread(db: sqlite3.Connection, thread: ThreadRecord, **changes: Any) -> ThreadRecord:
    stamp = _stamp(db)
    updated = thread.model_copy(update={**changes, "updated_at": from_us(stamp)})
    db.execute(
        "UPDATE threads SET updated_us = ?, record = ? WHERE id = ?", (stamp, updated.model_dump_json(), thread.id)
    )
    return updated


def insert_message(db: sqlite3.Connection, message: MessageRecord) -> None:
    db.execute(
        "INSERT INTO messages (id, thread_id, tenant, end_user, record) VALUES (?, ?, ?, ?, ?)",
        (message.id, message.thread_id, message.owner.tenant, message.owner.user, message.model_dump_json()),
    )


def insert_response(db: sqlite3.Connection, response: ResponseRecord) -> None:
    lease = None if response.lease_expires_at is None else to_us(response.lease_expires_at)
    db.execute(
        "INSERT INTO responses (id, thread_id, tenant, end_user, status, lease_us, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            response.id,
            response.thread_id,
            response.owner.tenant,
            response.owner.user,
            response.status,
            lease,
            json.dumps(stored_response(response)),
        ),
    )


def save_response(
    db: sqlite3.Connection, response: ResponseRecord, *, visible: bool = True, **changes: Any
) -> ResponseRecord:
    """Write the response with `changes`; `visible` changes bump the version readers wait on."""
    updated = response.model_copy(update=changes)
    lease = None if updated.lease_expires_at is None else to_us(updated.lease_expires_at)
    db.execute(
        "UPDATE responses SET status = ?, lease_us = ?, version = version + ?, record = ? WHERE id = ?",
        (updated.status, lease, 1 if visible else 0, json.dumps(stored_response(updated)), updated.id),
    )
    return updated


def end_response(
    db: sqlite3.Connection,
    response: ResponseRecord,
    status: ResponseStatus,
    *,
    message: MessageRecord | None,
    error: ResponseError | None,
) -> ResponseRecord:
    """End a response: its status, message and error; the lease released; the thread stamped."""
    moment = now()
    if message is not None:
        insert_message(db, message)
    parts = list(message.parts) if message is not None else without_thinking(response.parts)
    ended = save_response(
        db,
        response,
        status=status,
        parts=parts,
        message_id=None if message is None else message.id,
        error=error,
        lease_expires_at=None,
        updated_at=moment,
        finished_at=moment,
    )
    thread = get_thread(db, response.owner, response.thread_id)
    if thread is not None:
        touch_thread(db, thread)
    return ended


def open_database(path: Path) -> sqlite3.Connection:
    return open_sqlite(path, what=_WHAT, schema=_SCHEMA, version=_SCHEMA_VERSION, setting=SETTING)


def open_read_connection(path: Path, writer: sqlite3.Connection) -> sqlite3.Connection:
    return open_reader(path, writer, what=_WHAT, setting=SETTING)


# --- retention: each step is one batch, inside the caller's transaction when it deletes -----------------------


def prune_threads(
    db: sqlite3.Connection, before: datetime, after: str, *, delete: bool
) -> tuple[PruneCounts, str | None]:
    """The next batch (ids above `after`) of threads last updated before `before` whose responses have all
    ended: counted with their messages, responses, events and conversation, and deleted with them if `delete`.

    Returns the counts and where the next batch starts (`None`: this was the last).
    """
    ids = [
        row[0]
        for row in db.execute(
            "SELECT id FROM threads t WHERE updated_us < ? AND id > ? AND NOT EXISTS "
            "(SELECT 1 FROM responses r WHERE r.thread_id = t.id AND r.status IN ('queued', 'running')) "
            "ORDER BY id LIMIT ?",
            (to_us(before), after, PRUNE_BATCH),
        ).fetchall()
    ]
    if not ids:
        return PruneCounts(), None
    marks = ",".join("?" * len(ids))
    their_responses = f"(SELECT id FROM responses WHERE thread_id IN ({marks}))"

    def count(query: str) -> int:
        return int(db.execute(query, ids).fetchone()[0])

    counts = PruneCounts(
        threads=len(ids),
        messages=count(f"SELECT COUNT(*) FROM messages WHERE thread_id IN ({marks})"),
        responses=count(f"SELECT COUNT(*) FROM responses WHERE thread_id IN ({marks})"),
        events=count(f"SELECT COUNT(*) FROM events WHERE response_id IN {their_responses}"),
        conversations=count(f"SELECT COUNT(*) FROM conversations WHERE id IN ({marks})"),
    )
    if delete:
        db.execute(f"DELETE FROM events WHERE response_id IN {their_responses}", ids)
        db.execute(f"DELETE FROM responses WHERE thread_id IN ({marks})", ids)
        db.execute(f"DELETE FROM messages WHERE thread_id IN ({marks})", ids)
        db.execute(f"DELETE FROM threads WHERE id IN ({marks})", ids)  # the trigger takes their conversations
    return counts, ids[-1] if len(ids) == PRUNE_BATCH else None


def prune_lone_conversations(
    db: sqlite3.Connection, before: datetime, after: str, *, delete: bool
) -> tuple[PruneCounts, str | None]:
    """The next batch of conversations last saved before `before` that are no thread's (the library's, the
    console's); a thread's conversation goes with its thread."""
    ids = [
        row[0]
        for row in db.execute(
            "SELECT id FROM conversations c WHERE updated_us < ? AND id > ? "
            "AND NOT EXISTS (SELECT 1 FROM threads t WHERE t.id = c.id) ORDER BY id LIMIT ?",
            (to_us(before), after, PRUNE_BATCH),
        ).fetchall()
    ]
    if not ids:
        return PruneCounts(), None
    if delete:
        db.execute(f"DELETE FROM conversations WHERE id IN ({','.join('?' * len(ids))})", ids)
    return PruneCounts(conversations=len(ids)), ids[-1] if len(ids) == PRUNE_BATCH else None


def prune_artifacts(
    db: sqlite3.Connection, before: datetime, after: int, *, delete: bool
) -> tuple[PruneCounts, int | None]:
    """The next batch of artifacts made before `before`, in the order they were stored (`rowid`).

    An artifact's time is inside its JSON record (a table has no column for it), so this reads records in
    storage order, which is the order they were made in, and stops at the first batch with nothing to
    delete: the cost is the artifacts deleted, not every artifact kept.
    """
    rows = db.execute(
        "SELECT rowid, id, json_extract(record, '$.created_at') FROM artifacts WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (after, PRUNE_BATCH),
    ).fetchall()
    old = [artifact_id for _, artifact_id, made in rows if made is not None and _made_before(made, before)]
    if not old:
        return PruneCounts(), None
    if delete:
        db.execute(f"DELETE FROM artifacts WHERE id IN ({','.join('?' * len(old))})", old)
    return PruneCounts(artifacts=len(old)), rows[-1][0] if len(rows) == PRUNE_BATCH else None


def _made_before(stamp: str, before: datetime) -> bool:
    try:
        return datetime.fromisoformat(stamp) < before
    except (TypeError, ValueError):  # not a time this code wrote: kept
        return False
