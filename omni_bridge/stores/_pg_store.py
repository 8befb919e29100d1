"""`PostgresStore`: every durable record of omni-bridge in PostgreSQL on one pool, shared by every worker behind a
load balancer: the bridge's conversations and artifacts, and the HTTP service's threads, messages, responses and
events.

How the `ServiceStore` rules hold when several processes share the database:

- **Atomic changes.** Every change is one transaction that first locks the row it decides on (`SELECT … FOR
  UPDATE`), so two workers never both claim, both finish or both cancel the same response.
- **One active response per thread.** `post_message` and `create_job` lock the thread row and look for an
  active response; a partial unique index (`thread_id` where the status is queued or running) makes a second
  one impossible even for a writer that skipped the check.
- **Leases.** `lease_expires_at` is written from the caller's `lease_until` and compared with the caller's
  `now`. A worker holds the lease while the response is running under its name: `expire_leases` is what takes
  it away, picking the expired rows `FOR UPDATE SKIP LOCKED`, so workers that run it at the same moment split
  the rows between them and each response is failed exactly once.
- **Cancel and live events across workers.** `request_cancel`, `append`, `finish` and `expire_leases` send
  `NOTIFY omni_bridge_responses, '<response id>'` inside their transaction (delivered at commit). Each store
  keeps one LISTEN connection (`_pg.Notifications`) that wakes the `wait_for_change` waiters of that response,
  so a cancel on worker B reaches the run on worker A, and an SSE client on B follows a run on
  A, without polling; while that connection is down, waiters poll.

- **Thread order.** Thread writes take their `updated_at` from a one-row clock (`GREATEST(last + 1 µs, now)`),
  so stamps are distinct across workers and `list_threads` pages on `updated_at` without skipping ties.

Records are stored whole as JSONB (a webhook's secret included, since the worker that runs a job signs with
it); the columns beside them exist to be searched, locked and indexed. Tables are created on first use
(`_pg_rows` holds the service's tables and row-level steps, `_pg_conversations` the conversations').
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from omni_bridge.agent import Conversation
from omni_bridge.stores import _pg_conversations as conversations
from omni_bridge.stores._pg import AsyncConnection, Database, jsonb, one
from omni_bridge.stores._pg_rows import (
    CHANNEL,
    SCHEMA,
    insert_message,
    insert_response,
    lock_response,
    notify,
    stamp_thread,
    write_response,
)
from omni_bridge.stores._protocol import PruneCounts
from omni_bridge.stores._records import (
    TERMINAL_STATUSES,
    Feedback,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ResponseStatus,
    StoredEvent,
    ThreadRecord,
)
from omni_bridge.stores._rules import (
    CANCELED_QUEUED,
    PARTS,
    WORKER_LOST,
    already_stored,
    check_limit,
    duplicate_conversation,
    lost_message,
    now,
    without_thinking,
)
from omni_bridge.tools import Artifact, ArtifactStore

__all__ = ["PostgresStore"]


class PostgresStore:
    """Conversations, threads, messages, responses and their events in PostgreSQL; see the module docstring.

    The store connects on first use (or on `open()`, which a server calls at start to fail fast) and creates
    its tables when missing. To keep them in their own schema, name it in the URL:
    `postgresql://…/db?options=-csearch_path%3Dbridge` (the schema must exist).

    Args:
        url: a `postgresql://` URL (libpq syntax); its password never appears in reprs or errors.
        max_connections: the connection pool's size at most (one more connection LISTENs).
        open_timeout: seconds to wait for the database at open.
        max_wait_seconds: the longest `wait_for_change` sleeps with no notification for its response; it
            bounds the delay when a change was notified between a reader's read and its wait.

    Raises:
        ConfigError: the URL is not a PostgreSQL URL; at first use, the database cannot be reached or was set up
            by a newer omni-bridge.
    """

    def __init__(
        self, url: str, *, max_connections: int = 10, open_timeout: float = 10.0, max_wait_seconds: float = 2.0
    ) -> None:
        self._db = Database(
            url, (SCHEMA, conversations.SCHEMA), max_connections=max_connections, open_timeout=open_timeout
        )
        self._notifications = self._db.notifications(CHANNEL, listen_cap=max_wait_seconds)
        self._open_timeout = open_timeout
        self._started = False
        self._artifacts = _PostgresArtifacts(self)

    def __repr__(self) -> str:
        return f"<PostgresStore {self._db.description} {'closed' if self._db.closed else 'open'}>"

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (while it is down, `wait_for_change` polls)."""
        return self._notifications.listening

    async def open(self) -> None:
        """Connect, create the tables when missing and start listening; later calls return at once.

        Raises:
            ConfigError: the database cannot be reached, or was set up by a newer omni-bridge.
        """
        await self._db.open()
        if not self._started:
            self._started = True
            await self._notifications.start(seconds=self._open_timeout)

    async def aclose(self) -> None:
        await self._notifications.aclose()
        await self._db.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- conversations ------------------------------------------------------------------------------------

    async def create(self, conversation: Conversation) -> None:
        await self.open()
        async with self._db.transaction() as conn:
            stamp = await conversations.create_conversation(conn, conversation)
            if stamp is None:
                raise duplicate_conversation(conversation.id)
        conversation.updated_at = stamp

    async def get(self, conversation_id: str) -> Conversation | None:
        await self.open()
        async with self._db.connection() as conn:
            return await conversations.get_conversation(conn, conversation_id)

    async def save(self, conversation: Conversation) -> None:
        await self.open()
        async with self._db.transaction() as conn:
            stamp = await conversations.save_conversation(conn, conversation)
        conversation.updated_at = stamp

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        check_limit(limit)
        await self.open()
        async with self._db.connection() as conn:
            return await conversations.list_conversations(conn, external_id, limit)

    async def delete(self, conversation_id: str) -> bool:
        await self.open()
        async with self._db.transaction() as conn:
            return await conversations.delete_conversation(conn, conversation_id)

    # --- threads and messages -----------------------------------------------------------------------------

    async def create_thread(self, thread: ThreadRecord, message: MessageRecord, response: ResponseRecord) -> None:
        await self.open()
        async with self._db.transaction() as conn:
            await self._insert_new_thread(conn, thread, message, response)

    async def post_message(self, message: MessageRecord, response: ResponseRecord) -> ThreadRecord | None:
        await self.open()
        async with self._db.transaction() as conn:
            return await self._add_to_thread(conn, message, response)

    async def get_thread(self, owner: Owner, thread_id: str) -> ThreadRecord | None:
        await self.open()
        async with self._db.connection() as conn:
            row = await one(
                conn,
                "SELECT record FROM bridge_threads WHERE id = %s AND tenant = %s AND end_user = %s",
                (thread_id, owner.tenant, owner.user),
            )
        return None if row is None else ThreadRecord.model_validate(row[0])

    async def list_threads(
        self, owner: Owner, *, limit: int = 20, before: datetime | None = None
    ) -> builtins.list[ThreadRecord]:
        check_limit(limit)
        await self.open()
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT record FROM bridge_threads WHERE tenant = %s AND end_user = %s "
                "AND (%s::timestamptz IS NULL OR updated_at < %s::timestamptz) "
                "ORDER BY updated_at DESC, id DESC LIMIT %s",
                (owner.tenant, owner.user, before, before, limit),
            )
            rows = await cursor.fetchall()
        return [ThreadRecord.model_validate(row[0]) for row in rows]

    async def list_tenant_threads(
        self, tenant: str, *, limit: int = 20, before: datetime | None = None
    ) -> builtins.list[ThreadRecord]:
        check_limit(limit)
        await self.open()
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT record FROM bridge_threads WHERE tenant = %s "
                "AND (%s::timestamptz IS NULL OR updated_at < %s::timestamptz) "
                "ORDER BY updated_at DESC, id DESC LIMIT %s",
                (tenant, before, before, limit),
            )
            rows = await cursor.fetchall()
        return [ThreadRecord.model_validate(row[0]) for row in rows]

    async def thread_owner(self, tenant: str, thread_id: str) -> Owner | None:
        await self.open()
        async with self._db.connection() as conn:
            row = await one(
                conn, "SELECT end_user FROM bridge_threads WHERE id = %s AND tenant = %s", (thread_id, tenant)
            )
        return None if row is None else Owner(tenant=tenant, user=row[0])

    async def list_messages(self, owner: Owner, thread_id: str) -> builtins.list[MessageRecord] | None:
        await self.open()
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT m.record FROM bridge_threads t LEFT JOIN bridge_messages m ON m.thread_id = t.id "
                "WHERE t.id = %s AND t.tenant = %s AND t.end_user = %s ORDER BY m.position",
                (thread_id, owner.tenant, owner.user),
            )
            rows = await cursor.fetchall()
        if not rows:
            return None
        return [MessageRecord.model_validate(row[0]) for row in rows if row[0] is not None]

    async def get_message(self, owner: Owner, message_id: str) -> MessageRecord | None:
        await self.open()
        async with self._db.connection() as conn:
            row = await one(
                conn,
                "SELECT record FROM bridge_messages WHERE id = %s AND tenant = %s AND end_user = %s",
                (message_id, owner.tenant, owner.user),
            )
        return None if row is None else MessageRecord.model_validate(row[0])

    async def set_feedback(self, owner: Owner, message_id: str, feedback: Feedback) -> MessageRecord | None:
        await self.open()
        async with self._db.transaction() as conn:
            row = await one(
                conn,
                "SELECT record FROM bridge_messages WHERE id = %s AND tenant = %s AND end_user = %s FOR UPDATE",
                (message_id, owner.tenant, owner.user),
            )
            if row is None:
                return None
            message = MessageRecord.model_validate(row[0])
            if message.role != "assistant":
                return None
            message = message.model_copy(update={"feedback": feedback})
            await conn.execute(
                "UPDATE bridge_messages SET record = %s WHERE id = %s",
                (jsonb(message.model_dump(mode="json")), message.id),
            )
        return message

    # --- responses ----------------------------------------------------------------------------------------

    async def get_response(self, owner: Owner, response_id: str) -> ResponseRecord | None:
        await self.open()
        async with self._db.connection() as conn:
            row = await one(
                conn,
                "SELECT record FROM bridge_responses WHERE id = %s AND tenant = %s AND end_user = %s",
                (response_id, owner.tenant, owner.user),
            )
        return None if row is None else ResponseRecord.model_validate(row[0])

    async def response_owner(self, tenant: str, response_id: str) -> Owner | None:
        await self.open()
        async with self._db.connection() as conn:
            row = await one(
                conn, "SELECT end_user FROM bridge_responses WHERE id = %s AND tenant = %s", (response_id, tenant)
            )
        return None if row is None else Owner(tenant=tenant, user=row[0])

    async def create_job(self, thread: ThreadRecord | None, message: MessageRecord, response: ResponseRecord) -> bool:
        await self.open()
        async with self._db.transaction() as conn:
            if thread is not None:
                await self._insert_new_thread(conn, thread, message, response)
                return True
            return await self._add_to_thread(conn, message, response) is not None

    async def count_active(self, owner: Owner) -> tuple[int, int]:
        await self.open()
        async with self._db.connection() as conn:
            # The partial index `bridge_responses_one_active` holds exactly the active rows; the caps keep them few.
            row = await one(
                conn,
                "SELECT COUNT(*) FILTER (WHERE end_user = %s), COUNT(*) FROM bridge_responses "
                "WHERE status IN ('queued', 'running') AND tenant = %s",
                (owner.user, owner.tenant),
            )
        assert row is not None  # an aggregate answers one row
        return int(row[0]), int(row[1])

    async def claim(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        await self.open()
        async with self._db.transaction() as conn:
            response = await lock_response(conn, response_id)
            if response is None or response.status != "queued":
                return None
            moment = now()
            response = response.model_copy(
                update={
                    "status": "running",
                    "worker": worker,
                    "lease_expires_at": lease_until,
                    "started_at": moment,
                    "updated_at": moment,
                }
            )
            await write_response(conn, response)
            await notify(conn, response_id)
        return response

    async def heartbeat(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        await self.open()
        async with self._db.transaction() as conn:
            response = await lock_response(conn, response_id)
            if response is None or not _holds(response, worker):
                return None
            response = response.model_copy(update={"lease_expires_at": lease_until})
            await write_response(conn, response)
        return response

    async def append(
        self,
        response_id: str,
        worker: str,
        events: Sequence[dict[str, object]],
        *,
        parts: Sequence[object] | None = None,
        progress: str | None = None,
        conversation: Conversation | None = None,
    ) -> bool:
        await self.open()
        async with self._db.transaction() as conn:
            response = await lock_response(conn, response_id)
            if response is None or not _holds(response, worker):
                return False
            await _insert_events(conn, response_id, events)
            update: dict[str, Any] = {"updated_at": now()}
            if parts is not None:
                update["parts"] = PARTS.validate_python(list(parts))
            if progress is not None:
                update["progress"] = progress
            await write_response(conn, response.model_copy(update=update))
            stamp = None if conversation is None else await conversations.save_conversation(conn, conversation)
            await notify(conn, response_id)
        if conversation is not None and stamp is not None:
            conversation.updated_at = stamp
        return True

    async def finish(
        self,
        response_id: str,
        worker: str,
        status: ResponseStatus,
        *,
        message: MessageRecord | None,
        error: ResponseError | None = None,
        conversation: Conversation | None = None,
        events: Sequence[dict[str, object]] = (),
        first_seq: int | None = None,
        progress: str | None = None,
    ) -> bool:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"a response ends succeeded, failed or canceled, not {status!r}")
        await self.open()
        async with self._db.transaction() as conn:
            response = await lock_response(conn, response_id)
            if response is None or not _holds(response, worker):
                return False
            await _insert_events(conn, response_id, events, first_seq)
            if progress is not None:
                response = response.model_copy(update={"progress": progress})
            await self._end(conn, response, status, message=message, error=error)
            stamp = None if conversation is None else await conversations.save_conversation(conn, conversation)
        if conversation is not None and stamp is not None:
            conversation.updated_at = stamp
        return True

    async def request_cancel(self, owner: Owner, response_id: str, *, by: str) -> ResponseRecord | None:
        await self.open()
        async with self._db.transaction() as conn:
            response = await lock_response(conn, response_id, owner)
            if response is None or not response.active or response.cancel_requested:
                return response
            response = response.model_copy(update={"cancel_requested": True, "canceled_by": by, "updated_at": now()})
            if response.status == "queued":
                return await self._end(conn, response, "canceled", message=None, error=CANCELED_QUEUED)
            await write_response(conn, response)
            await notify(conn, response_id)
        return response

    async def expire_leases(self, now: datetime) -> builtins.list[ResponseRecord]:
        await self.open()
        expired: builtins.list[ResponseRecord] = []
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT record FROM bridge_responses WHERE status IN ('queued', 'running') AND lease_expires_at < %s "
                "ORDER BY lease_expires_at FOR UPDATE SKIP LOCKED",
                (now,),
            )
            for (record,) in await cursor.fetchall():
                response = ResponseRecord.model_validate(record)
                message = lost_message(response)
                expired.append(await self._end(conn, response, "failed", message=message, error=WORKER_LOST))
        return expired

    async def events_after(self, owner: Owner, response_id: str, seq: int) -> builtins.list[StoredEvent] | None:
        await self.open()
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT e.seq, e.event FROM bridge_responses r "
                "LEFT JOIN bridge_response_events e ON e.response_id = r.id AND e.seq > %s "
                "WHERE r.id = %s AND r.tenant = %s AND r.end_user = %s ORDER BY e.seq",
                (seq, response_id, owner.tenant, owner.user),
            )
            rows = await cursor.fetchall()
        if not rows:
            return None
        return [StoredEvent(seq=row[0], event=row[1]) for row in rows if row[0] is not None]

    async def wait_for_change(self, response_id: str, max_wait: float) -> None:
        await self.open()
        await self._notifications.wait(response_id, seconds=max_wait)

    # --- retention ----------------------------------------------------------------------------------------

    async def prune(self, older_than: datetime, *, dry_run: bool = False) -> PruneCounts:
        await self.open()
        counts = PruneCounts()
        steps: tuple[_PruneStep, ...] = (
            _prune_threads,
            conversations.prune_lone_conversations,
            conversations.prune_artifacts,
        )
        for step in steps:
            after: str | None = ""
            while after is not None:
                # One transaction per batch; a dry run only reads (and locks nothing).
                async with self._db.transaction() as conn:
                    found, after = await step(conn, older_than, after, delete=not dry_run)
                counts += found
        return counts

    # --- the steps shared by several methods, inside their transaction ------------------------------------

    async def _insert_new_thread(
        self, conn: AsyncConnection[Any], thread: ThreadRecord, message: MessageRecord, response: ResponseRecord
    ) -> None:
        _check_same_thread(thread.id, thread.owner, message, response)
        # The new row is locked until commit, so taking the clock after it keeps the order thread -> clock.
        inserted = await one(
            conn,
            "INSERT INTO bridge_threads (id, tenant, end_user, updated_at, record) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING RETURNING id",
            (thread.id, thread.owner.tenant, thread.owner.user, thread.updated_at, jsonb({})),
        )
        if inserted is None:
            raise ValueError(f"thread {thread.id!r} already exists")
        await insert_message(conn, message)
        await insert_response(conn, response)
        await stamp_thread(conn, thread.model_copy(update={"current_response_id": response.id}))

    async def _add_to_thread(
        self, conn: AsyncConnection[Any], message: MessageRecord, response: ResponseRecord
    ) -> ThreadRecord | None:
        _check_same_thread(message.thread_id, message.owner, message, response)
        row = await one(
            conn,
            "SELECT record FROM bridge_threads WHERE id = %s AND tenant = %s AND end_user = %s FOR UPDATE",
            (message.thread_id, message.owner.tenant, message.owner.user),
        )
        if row is None:
            return None
        active = await one(
            conn,
            "SELECT 1 FROM bridge_responses WHERE thread_id = %s AND status IN ('queued', 'running')",
            (message.thread_id,),
        )
        if active is not None:
            return None
        await insert_message(conn, message)
        await insert_response(conn, response)
        thread = ThreadRecord.model_validate(row[0])
        return await stamp_thread(conn, thread.model_copy(update={"current_response_id": response.id}))

    async def _end(
        self,
        conn: AsyncConnection[Any],
        response: ResponseRecord,
        status: ResponseStatus,
        *,
        message: MessageRecord | None,
        error: ResponseError | None,
    ) -> ResponseRecord:
        """End a locked response: status, message and error; the lease released; the thread stamped; NOTIFY."""
        moment = now()
        if message is not None:
            await insert_message(conn, message)
        ended = response.model_copy(
            update={
                "status": status,
                "parts": list(message.parts) if message is not None else without_thinking(response.parts),
                "message_id": None if message is None else message.id,
                "error": error,
                "lease_expires_at": None,
                "updated_at": moment,
                "finished_at": moment,
            }
        )
        await write_response(conn, ended)
        row = await one(conn, "SELECT record FROM bridge_threads WHERE id = %s FOR UPDATE", (response.thread_id,))
        if row is not None:
            await stamp_thread(conn, ThreadRecord.model_validate(row[0]))
        await notify(conn, response.id)
        return ended


_PruneStep = Callable[..., Awaitable[tuple[PruneCounts, str | None]]]
"""A retention step: `(conn, before, after, *, delete)` -> (counts, the next `after`, `None` once done)."""


async def _prune_threads(
    conn: AsyncConnection[Any], before: datetime, after: str, *, delete: bool
) -> tuple[PruneCounts, str | None]:
    """The next batch (ids above `after`) of threads last updated before `before` whose responses have all
    ended: counted with their messages, responses, events and conversation, and deleted with them if `delete`.

    The threads are locked (`FOR UPDATE SKIP LOCKED`): a message posted to one meanwhile waits for the lock,
    then finds no thread; a thread another transaction holds is left for the next pass. Deleting a thread
    takes its messages, responses and events (foreign keys) and its conversation (trigger) with it.
    """
    cursor = await conn.execute(
        ("SELECT id FROM bridge_threads t WHERE updated_at < %s AND id > %s AND NOT EXISTS "
         "(SELECT 1 FROM bridge_responses r WHERE r.thread_id = t.id AND r.status IN ('queued', 'running')) "
         "ORDER BY id LIMIT %s")
        + (" FOR UPDATE SKIP LOCKED" if delete else ""),
        (before, after, conversations.PRUNE_BATCH),
    )  # fmt: skip
    ids = [row[0] for row in await cursor.fetchall()]
    if not ids:
        return PruneCounts(), None
    row = await one(
        conn,
        "SELECT (SELECT COUNT(*) FROM bridge_messages WHERE thread_id = ANY(%s)), "
        "(SELECT COUNT(*) FROM bridge_responses WHERE thread_id = ANY(%s)), "
        "(SELECT COUNT(*) FROM bridge_response_events e JOIN bridge_responses r ON r.id = e.response_id "
        "WHERE r.thread_id = ANY(%s)), "
        "(SELECT COUNT(*) FROM bridge_conversations WHERE id = ANY(%s))",
        (ids, ids, ids, ids),
    )
    assert row is not None  # a SELECT of subqueries answers one row
    counts = PruneCounts(threads=len(ids), messages=row[0], responses=row[1], events=row[2], conversations=row[3])
    if delete:
        await conn.execute("DELETE FROM bridge_threads WHERE id = ANY(%s)", (ids,))
    return counts, ids[-1] if len(ids) == conversations.PRUNE_BATCH else None


def _check_same_thread(thread_id: str, owner: Owner, message: MessageRecord, response: ResponseRecord) -> None:
    if {message.thread_id, response.thread_id} != {thread_id} or {message.owner, response.owner} != {owner}:
        raise ValueError("the message and the response must belong to the same thread and owner")


def _holds(response: ResponseRecord, worker: str) -> bool:
    return response.status == "running" and response.worker == worker


class _PostgresArtifacts:
    """The artifact table of a `PostgresStore`, on its pool."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"<PostgresArtifactStore of {self._store!r}>"

    async def put(self, artifact: Artifact) -> None:
        await self._store.open()
        async with self._store._db.transaction() as conn:
            await conversations.put_artifact(conn, artifact)

    async def get(self, artifact_id: str, *, owner: str) -> Artifact | None:
        await self._store.open()
        async with self._store._db.connection() as conn:
            return await conversations.get_artifact(conn, artifact_id, owner)


async def _insert_events(
    conn: AsyncConnection[Any], response_id: str, events: Sequence[dict[str, object]], first_seq: int | None = None
) -> None:
    """Store a response's next events, numbered on from its last (its row is locked by the caller); with
    `first_seq` (the number of the first), those already stored are skipped."""
    if not events:
        return
    row = await one(
        conn, "SELECT COALESCE(MAX(seq), 0) FROM bridge_response_events WHERE response_id = %s", (response_id,)
    )
    last = row[0] if row is not None else 0
    events = events[already_stored(last, first_seq) :]
    first = last + 1
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO bridge_response_events (response_id, seq, event) VALUES (%s, %s, %s)",
            [(response_id, first + n, jsonb(event)) for n, event in enumerate(events)],
        )
