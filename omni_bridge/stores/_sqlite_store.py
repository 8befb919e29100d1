"""`SqliteStore`: every durable record of omni-bridge in one SQLite file: conversations and artifacts (what the
`Bridge` keeps), threads, messages, responses and events (what the HTTP service keeps).

The default backend for one server (several worker processes on one machine may share the file). The stdlib
`sqlite3` runs in worker threads (`asyncio.to_thread`) on one connection used under a lock; the exception is a
lookup by key (a poll of a response), which runs on the loop on a second, read-only connection, because it is
quicker than the hop to a thread (see `_read`). WAL mode lets readers go on while one writes, and every rule
that needs a check-then-write (one active response per thread, lease ownership, cancel, no conversation
rebound to another user) runs inside one `BEGIN IMMEDIATE` transaction, which takes the file's write lock
first, so two processes cannot interleave between the check and the write.

A response's `version` goes up with every change a reader can see (events, parts, status, a cancel request):
`wait_for_change` polls it, and wakes at once for changes made through this same store object.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from omni_bridge.agent import Conversation
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
    from_us,
    lost_message,
    now,
    to_us,
)
from omni_bridge.stores._sqlite import transaction
from omni_bridge.stores._sqlite_conversations import (
    create_conversation,
    get_artifact,
    get_conversation,
    list_conversations,
    put_artifact,
    save_conversation,
)
from omni_bridge.stores._sqlite_tables import (
    end_response,
    get_message,
    get_response,
    get_thread,
    held,
    insert_message,
    insert_response,
    insert_thread,
    open_database,
    open_read_connection,
    prune_artifacts,
    prune_lone_conversations,
    prune_threads,
    save_response,
    thread_if_idle,
    touch_thread,
)
from omni_bridge.tools import Artifact, ArtifactStore

__all__ = ["SqliteStore"]

_T = TypeVar("_T")
_POLL_SECONDS = 0.1
"""How often `wait_for_change` looks for changes made by other processes."""


class SqliteStore:
    """The `Store` on a SQLite file (created with its directory when missing, opened at once): the bridge's
    conversation store and the service's store in one, so a bad path fails here rather than at the first question.

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
        self._db = open_database(self._path)
        self._reader = open_read_connection(self._path, self._db)
        self._reader_lock = threading.Lock()
        self._closed = False
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._artifacts = _SqliteArtifacts(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SqliteStore path={str(self._path)!r} {state}>"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._close)

    # --- conversations ------------------------------------------------------------------------------------

    async def create(self, conversation: Conversation) -> None:
        def create(db: sqlite3.Connection) -> int:
            with transaction(db):
                return create_conversation(db, conversation)

        conversation.updated_at = from_us(await self._run(create))

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self._run(lambda db: get_conversation(db, conversation_id))

    async def save(self, conversation: Conversation) -> None:
        def save(db: sqlite3.Connection) -> int:
            with transaction(db):
                return save_conversation(db, conversation)

        conversation.updated_at = from_us(await self._run(save))

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        check_limit(limit)
        return await self._run(lambda db: list_conversations(db, external_id, limit))

    async def delete(self, conversation_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            with transaction(db):
                return db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

        return await self._run(delete)

    # --- threads and messages -----------------------------------------------------------------------------

    async def create_thread(self, thread: ThreadRecord, message: MessageRecord, response: ResponseRecord) -> None:
        def create(db: sqlite3.Connection) -> None:
            with transaction(db):
                insert_thread(db, thread, response)
                insert_message(db, message)
                insert_response(db, response)

        await self._run(create)

    async def post_message(self, message: MessageRecord, response: ResponseRecord) -> ThreadRecord | None:
        def post(db: sqlite3.Connection) -> ThreadRecord | None:
            with transaction(db):
                thread = thread_if_idle(db, message.owner, message.thread_id)
                if thread is None:
                    return None
                insert_message(db, message)
                insert_response(db, response)
                return touch_thread(db, thread, current_response_id=response.id)

        return await self._run(post)

    async def create_job(self, thread: ThreadRecord | None, message: MessageRecord, response: ResponseRecord) -> bool:
        if thread is not None:
            await self.create_thread(thread, message, response)
            return True
        return await self.post_message(message, response) is not None

    async def get_thread(self, owner: Owner, thread_id: str) -> ThreadRecord | None:
        return await self._read(lambda db: get_thread(db, owner, thread_id))

    async def list_threads(
        self, owner: Owner, *, limit: int = 20, before: datetime | None = None
    ) -> builtins.list[ThreadRecord]:
        check_limit(limit)
        query = "SELECT record FROM threads WHERE tenant = ? AND end_user = ?"
        params: list[object] = [owner.tenant, owner.user]
        if before is not None:
            query += " AND updated_us < ?"
            params.append(to_us(before))
        query += " ORDER BY updated_us DESC, id DESC LIMIT ?"
        params.append(limit)
        rows = await self._run(lambda db: db.execute(query, params).fetchall())
        return [ThreadRecord.model_validate_json(row[0]) for row in rows]

    async def list_tenant_threads(
        self, tenant: str, *, limit: int = 20, before: datetime | None = None
    ) -> builtins.list[ThreadRecord]:
        check_limit(limit)
        query = "SELECT record FROM threads WHERE tenant = ?"
        params: list[object] = [tenant]
        if before is not None:
            query += " AND updated_us < ?"
            params.append(to_us(before))
        query += " ORDER BY updated_us DESC, id DESC LIMIT ?"
        params.append(limit)
        rows = await self._run(lambda db: db.execute(query, params).fetchall())
        return [ThreadRecord.model_validate_json(row[0]) for row in rows]

    async def thread_owner(self, tenant: str, thread_id: str) -> Owner | None:
        def read(db: sqlite3.Connection) -> Owner | None:
            row = db.execute("SELECT end_user FROM threads WHERE id = ? AND tenant = ?", (thread_id, tenant)).fetchone()
            return None if row is None else Owner(tenant=tenant, user=row[0])

        return await self._read(read)

    async def list_messages(self, owner: Owner, thread_id: str) -> builtins.list[MessageRecord] | None:
        def read(db: sqlite3.Connection) -> builtins.list[MessageRecord] | None:
            if get_thread(db, owner, thread_id) is None:
                return None
            rows = db.execute("SELECT record FROM messages WHERE thread_id = ? ORDER BY pos", (thread_id,)).fetchall()
            return [MessageRecord.model_validate_json(row[0]) for row in rows]

        return await self._run(read)

    async def get_message(self, owner: Owner, message_id: str) -> MessageRecord | None:
        return await self._read(lambda db: get_message(db, owner, message_id))

    async def set_feedback(self, owner: Owner, message_id: str, feedback: Feedback) -> MessageRecord | None:
        def write(db: sqlite3.Connection) -> MessageRecord | None:
            with transaction(db):
                message = get_message(db, owner, message_id)
                if message is None or message.role != "assistant":
                    return None
                updated = message.model_copy(update={"feedback": feedback})
                db.execute("UPDATE messages SET record = ? WHERE id = ?", (updated.model_dump_json(), message_id))
                return updated

        return await self._run(write)

    # --- responses ----------------------------------------------------------------------------------------

    async def get_response(self, owner: Owner, response_id: str) -> ResponseRecord | None:
        return await self._read(lambda db: get_response(db, response_id, owner))

    async def response_owner(self, tenant: str, response_id: str) -> Owner | None:
        def read(db: sqlite3.Connection) -> Owner | None:
            row = db.execute(
                "SELECT end_user FROM responses WHERE id = ? AND tenant = ?", (response_id, tenant)
            ).fetchone()
            return None if row is None else Owner(tenant=tenant, user=row[0])

        return await self._read(read)

    async def count_active(self, owner: Owner) -> tuple[int, int]:
        def read(db: sqlite3.Connection) -> tuple[int, int]:
            # `responses_running` (status, lease_us) finds the active rows; there are few (the caps bound them).
            row = db.execute(
                "SELECT COALESCE(SUM(end_user = ?), 0), COUNT(*) FROM responses "
                "WHERE status IN ('queued', 'running') AND tenant = ?",
                (owner.user, owner.tenant),
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self._read(read)

    async def claim(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        def claim(db: sqlite3.Connection) -> ResponseRecord | None:
            with transaction(db):
                response = get_response(db, response_id)
                if response is None or response.status != "queued":
                    return None
                moment = now()
                return save_response(
                    db,
                    response,
                    status="running",
                    worker=worker,
                    lease_expires_at=lease_until,
                    started_at=moment,
                    updated_at=moment,
                )

        return await self._changing(response_id, claim)

    async def heartbeat(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        def beat(db: sqlite3.Connection) -> ResponseRecord | None:
            with transaction(db):
                response = held(db, response_id, worker)
                if response is None:
                    return None
                return save_response(db, response, visible=False, lease_expires_at=lease_until)

        return await self._run(beat)

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
        encoded = [json.dumps(event) for event in events]
        checked = None if parts is None else PARTS.validate_python(list(parts))

        def append(db: sqlite3.Connection) -> int | None:
            with transaction(db):
                response = held(db, response_id, worker)
                if response is None:
                    return None
                _insert_events(db, response_id, encoded)
                changes: dict[str, Any] = {"updated_at": now()}
                if checked is not None:
                    changes["parts"] = checked
                if progress is not None:
                    changes["progress"] = progress
                save_response(db, response, **changes)
                return _write_conversation(db, conversation)

        return _stamped(conversation, await self._changing(response_id, append))

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
            raise ValueError(f"a response finishes as succeeded, failed or canceled, not {status!r}")
        encoded = [json.dumps(event) for event in events]

        def finish(db: sqlite3.Connection) -> int | None:
            with transaction(db):
                response = held(db, response_id, worker)
                if response is None:
                    return None
                _insert_events(db, response_id, encoded, first_seq)
                if progress is not None:
                    response = response.model_copy(update={"progress": progress})
                end_response(db, response, status, message=message, error=error)
                return _write_conversation(db, conversation)

        return _stamped(conversation, await self._changing(response_id, finish))

    async def request_cancel(self, owner: Owner, response_id: str, *, by: str) -> ResponseRecord | None:
        def cancel(db: sqlite3.Connection) -> ResponseRecord | None:
            with transaction(db):
                response = get_response(db, response_id, owner)
                if response is None or response.status in TERMINAL_STATUSES:
                    return response
                if response.status == "queued":
                    ended = response.model_copy(update={"cancel_requested": True, "canceled_by": by})
                    return end_response(db, ended, "canceled", message=None, error=CANCELED_QUEUED)
                if response.cancel_requested:
                    return response
                return save_response(db, response, cancel_requested=True, canceled_by=by, updated_at=now())

        return await self._changing(response_id, cancel)

    async def expire_leases(self, now: datetime) -> builtins.list[ResponseRecord]:
        def expire(db: sqlite3.Connection) -> builtins.list[ResponseRecord]:
            with transaction(db):
                rows = db.execute(
                    "SELECT record FROM responses WHERE status IN ('queued', 'running') AND lease_us < ? "
                    "ORDER BY lease_us",
                    (to_us(now),),
                ).fetchall()
                ended = []
                for (record,) in rows:
                    response = ResponseRecord.model_validate_json(record)
                    message = lost_message(response)
                    ended.append(end_response(db, response, "failed", message=message, error=WORKER_LOST))
                return ended

        ended = await self._run(expire)
        for response in ended:
            self._notify(response.id)
        return ended

    async def events_after(self, owner: Owner, response_id: str, seq: int) -> builtins.list[StoredEvent] | None:
        def read(db: sqlite3.Connection) -> builtins.list[StoredEvent] | None:
            if get_response(db, response_id, owner) is None:
                return None
            rows = db.execute(
                "SELECT seq, event FROM events WHERE response_id = ? AND seq > ? ORDER BY seq", (response_id, seq)
            ).fetchall()
            return [StoredEvent(seq=row[0], event=json.loads(row[1])) for row in rows]

        return await self._run(read)

    async def wait_for_change(self, response_id: str, max_wait: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(max_wait, 0.0)
        woken = asyncio.Event()
        waiter = (loop, woken)
        # Registered before the version is read: a local change in between still wakes this waiter.
        self._waiters.setdefault(response_id, set()).add(waiter)
        try:
            start = await self._version(response_id)
            while (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(_POLL_SECONDS, left)):
                        await woken.wait()
                    return
                except TimeoutError:
                    pass
                if await self._version(response_id) != start:
                    return
        finally:
            waiters = self._waiters.get(response_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[response_id]

    # --- retention ----------------------------------------------------------------------------------------

    async def prune(self, older_than: datetime, *, dry_run: bool = False) -> PruneCounts:
        counts = PruneCounts()
        steps: tuple[tuple[_PruneStep, str | int], ...] = (
            (prune_threads, ""),
            (prune_lone_conversations, ""),
            (prune_artifacts, 0),
        )
        for step, start in steps:
            cursor: str | int | None = start
            while cursor is not None:
                found, cursor = await self._run(functools.partial(_prune_batch, step, older_than, cursor, dry_run))
                counts += found
        return counts

    # --- plumbing -----------------------------------------------------------------------------------------

    async def _version(self, response_id: str) -> int | None:
        rows = await self._read(
            lambda db: db.execute("SELECT version FROM responses WHERE id = ?", (response_id,)).fetchall()
        )
        return int(rows[0][0]) if rows else None

    async def _changing(self, response_id: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a write that may change what readers see of the response, then wake its local waiters."""
        try:
            return await self._run(work)
        finally:
            self._notify(response_id)

    def _notify(self, response_id: str) -> None:
        for loop, event in list(self._waiters.get(response_id, ())):
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        self._check_open()
        return await asyncio.to_thread(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            # Checked again under the lock: `aclose` may have started while this call waited for a thread.
            if self._closed:
                raise RuntimeError("SqliteStore is closed")
            return work(self._db)

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a lookup by key on the loop itself, on the read connection.

        A WAL reader never waits for the writer, and such a read takes some 25 µs where a hop to a worker
        thread takes ten times that (polls are the service's hot path). In the rare case the file is busy
        all the same (a checkpoint, a recovery), the read waits in a worker thread like a write.
        """
        if self._closed:
            raise RuntimeError("SqliteStore is closed")
        try:
            with self._reader_lock:
                return work(self._reader)
        except sqlite3.OperationalError:
            return await self._run(work)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("SqliteStore is closed")

    def _close(self) -> None:
        with self._lock, self._reader_lock:
            self._reader.close()
            self._db.close()


_PruneStep = Callable[..., tuple[PruneCounts, Any]]
"""One of `_sqlite_tables`' retention steps: `(db, before, after, *, delete)` -> (counts, the next `after`)."""


def _prune_batch(
    step: _PruneStep, before: datetime, after: str | int, dry_run: bool, db: sqlite3.Connection
) -> tuple[PruneCounts, Any]:
    """One batch of a retention step: a write transaction of its own, or a plain read in a dry run."""
    if dry_run:
        return step(db, before, after, delete=False)
    with transaction(db):
        return step(db, before, after, delete=True)


_WRITTEN = 0
"""What a lease-holding write returns when it had no conversation to write (a stamp is never 0)."""


def _write_conversation(db: sqlite3.Connection, conversation: Conversation | None) -> int:
    """Save the run's conversation inside the caller's transaction; its stamp, or `_WRITTEN` without one."""
    return _WRITTEN if conversation is None else save_conversation(db, conversation)


def _insert_events(
    db: sqlite3.Connection, response_id: str, encoded: Sequence[str], first_seq: int | None = None
) -> None:
    """Store a response's next events (JSON text), numbered on from its last; with `first_seq` (the number of
    the first), those already stored are skipped."""
    if not encoded:
        return
    (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE response_id = ?", (response_id,)).fetchone()
    encoded = encoded[already_stored(last, first_seq) :]
    db.executemany(
        "INSERT INTO events (response_id, seq, event) VALUES (?, ?, ?)",
        [(response_id, last + n, event) for n, event in enumerate(encoded, start=1)],
    )


def _stamped(conversation: Conversation | None, stamp: int | None) -> bool:
    """Whether the write happened (`None`: the lease was lost); stamps the conversation it saved."""
    if stamp is None:
        return False
    if conversation is not None:
        conversation.updated_at = from_us(stamp)
    return True


class _SqliteArtifacts:
    """The artifact table of a `SqliteStore`, on its connection."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"<SqliteArtifactStore of {self._store!r}>"

    async def put(self, artifact: Artifact) -> None:
        def put(db: sqlite3.Connection) -> None:
            with transaction(db):
                put_artifact(db, artifact)

        await self._store._run(put)

    async def get(self, artifact_id: str, *, owner: str) -> Artifact | None:
        return await self._store._run(lambda db: get_artifact(db, artifact_id, owner))
