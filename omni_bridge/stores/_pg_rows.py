"""The service's tables in `PostgresStore` and the row-level steps its transactions are made of.

Every function here runs on a connection inside the caller's transaction; none commits. The order in which
rows are locked is always response, then thread, then the clock row, so two transactions never wait on each
other in a circle.
"""

from __future__ import annotations

from typing import Any

from omni_bridge.stores._pg import AsyncConnection, Schema, jsonb, one
from omni_bridge.stores._records import MessageRecord, Owner, ResponseRecord, ThreadRecord
from omni_bridge.stores._rules import from_us, now, stored_response, to_us

__all__ = [
    "CHANNEL",
    "SCHEMA",
    "insert_message",
    "insert_response",
    "lock_response",
    "notify",
    "stamp_thread",
    "write_response",
]

CHANNEL = "omni_bridge_responses"
"""The NOTIFY channel; the payload is the response id."""

SCHEMA = Schema(
    component="service",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS bridge_threads (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            end_user TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            record JSONB NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS bridge_service_clock (
            one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
            last_us BIGINT NOT NULL
        )""",
        "INSERT INTO bridge_service_clock (one, last_us) VALUES (true, 0) ON CONFLICT DO NOTHING",
        "CREATE INDEX IF NOT EXISTS bridge_threads_by_owner ON bridge_threads (tenant, end_user, updated_at, id)",
        # Retention finds old threads by time, and deleting one finds its responses by thread (the foreign key).
        "CREATE INDEX IF NOT EXISTS bridge_threads_by_time ON bridge_threads (updated_at)",
        """CREATE TABLE IF NOT EXISTS bridge_messages (
            position BIGINT GENERATED ALWAYS AS IDENTITY,
            id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES bridge_threads (id) ON DELETE CASCADE,
            tenant TEXT NOT NULL,
            end_user TEXT NOT NULL,
            record JSONB NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS bridge_messages_by_thread ON bridge_messages (thread_id, position)",
        """CREATE TABLE IF NOT EXISTS bridge_responses (
            id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES bridge_threads (id) ON DELETE CASCADE,
            tenant TEXT NOT NULL,
            end_user TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
            worker TEXT,
            lease_expires_at TIMESTAMPTZ,
            record JSONB NOT NULL
        )""",
        "CREATE UNIQUE INDEX IF NOT EXISTS bridge_responses_one_active ON bridge_responses (thread_id) "
        "WHERE status IN ('queued', 'running')",
        "CREATE INDEX IF NOT EXISTS bridge_responses_leases ON bridge_responses (lease_expires_at) "
        "WHERE status = 'running'",
        "CREATE INDEX IF NOT EXISTS bridge_responses_by_thread ON bridge_responses (thread_id)",
        """CREATE TABLE IF NOT EXISTS bridge_response_events (
            response_id TEXT NOT NULL REFERENCES bridge_responses (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            event JSONB NOT NULL,
            PRIMARY KEY (response_id, seq)
        )""",
    ),
)


async def lock_response(
    conn: AsyncConnection[Any], response_id: str, owner: Owner | None = None
) -> ResponseRecord | None:
    if owner is None:
        row = await one(conn, "SELECT record FROM bridge_responses WHERE id = %s FOR UPDATE", (response_id,))
    else:
        row = await one(
            conn,
            "SELECT record FROM bridge_responses WHERE id = %s AND tenant = %s AND end_user = %s FOR UPDATE",
            (response_id, owner.tenant, owner.user),
        )
    return None if row is None else ResponseRecord.model_validate(row[0])


async def insert_message(conn: AsyncConnection[Any], message: MessageRecord) -> None:
    await conn.execute(
        "INSERT INTO bridge_messages (id, thread_id, tenant, end_user, record) VALUES (%s, %s, %s, %s, %s)",
        (
            message.id,
            message.thread_id,
            message.owner.tenant,
            message.owner.user,
            jsonb(message.model_dump(mode="json")),
        ),
    )


async def insert_response(conn: AsyncConnection[Any], response: ResponseRecord) -> None:
    await conn.execute(
        "INSERT INTO bridge_responses (id, thread_id, tenant, end_user, status, worker, lease_expires_at, record) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            response.id,
            response.thread_id,
            response.owner.tenant,
            response.owner.user,
            response.status,
            response.worker,
            response.lease_expires_at,
            jsonb(stored_response(response)),
        ),
    )


async def write_response(conn: AsyncConnection[Any], response: ResponseRecord) -> None:
    await conn.execute(
        "UPDATE bridge_responses SET status = %s, worker = %s, lease_expires_at = %s, record = %s WHERE id = %s",
        (response.status, response.worker, response.lease_expires_at, jsonb(stored_response(response)), response.id),
    )


async def stamp_thread(conn: AsyncConnection[Any], thread: ThreadRecord) -> ThreadRecord:
    """Write a locked thread stamped now, or a microsecond after the latest stamp of the database.

    The one-row clock orders every thread write, so stamps are distinct and `list_threads` pages on
    `updated_at` without skipping ties. Callers lock the thread row first: the order is thread, then clock.
    """
    row = await one(
        conn, "UPDATE bridge_service_clock SET last_us = GREATEST(last_us + 1, %s) RETURNING last_us", (to_us(now()),)
    )
    assert row is not None  # the schema inserts the clock's one row
    stamped = thread.model_copy(update={"updated_at": from_us(row[0])})
    await conn.execute(
        "UPDATE bridge_threads SET updated_at = %s, record = %s WHERE id = %s",
        (stamped.updated_at, jsonb(stamped.model_dump(mode="json")), stamped.id),
    )
    return stamped


async def notify(conn: AsyncConnection[Any], response_id: str) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, response_id))
