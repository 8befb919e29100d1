"""`ServiceStore`: the contract every backend keeps for the HTTP service; `Store`: that and the conversations in one.

A durable backend (SQLite for one server, PostgreSQL for many workers) is a `Store`: the `Bridge` uses it as
its `ConversationStore` and the service's runner as its `ServiceStore`, on one file or one pool.

The rules that make several workers safe, whatever the backend:

- **Ownership.** Every read and write names the `Owner`; a record of another owner is `None` / not found.
  Only `response_owner` names the tenant alone, and never finds another tenant's response.
- **One active response per thread.** `post_message` refuses (returns `None`) while the thread's current
  response is queued or running, atomically with the check.
- **Leases.** The worker that runs a response `claim`s it with a lease, renews it with `heartbeat`, and writes
  its progress and end only while it holds it (`append`/`finish` return `False` once the lease is lost). A
  response whose lease has run out is ended as `failed` by `expire_leases`, which any worker may call: a
  crashed worker's runs end within the lease time instead of hanging. What was written before is kept.
- **Cancel anywhere.** `request_cancel` on any worker marks the response; a queued one ends `canceled` at once,
  a running one is stopped by its owner, which sees `cancel_requested` on its next `heartbeat` (PostgreSQL
  also wakes it through LISTEN/NOTIFY, via `wait_for_change`).
- **Events.** Each response's events are kept in order (`seq` from 1) so a server-sent-events client can
  replay from any point and follow live (`events_after` + `wait_for_change`).
- **One transaction per turn.** `append` and `finish` take the conversation (the thread's transcript) staged
  by the run and write it in the same transaction as the events or the end of the response: an answer is
  either stored whole (response ended, assistant message, transcript) or not at all.
- **Retention.** `prune` deletes what was last touched before a moment: a thread whole (its messages,
  responses, events and conversation) unless one of its responses is still queued or running, conversations
  that have no thread, and artifacts made before then. It works in batches, one transaction each, so the
  service's other writes go on between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from omni_bridge.agent import Conversation, ConversationStore
from omni_bridge.stores._records import (
    Feedback,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ResponseStatus,
    StoredEvent,
    ThreadRecord,
)

__all__ = ["PruneCounts", "ServiceStore", "Store"]


@dataclasses.dataclass(frozen=True, slots=True)
class PruneCounts:
    """What `prune` deleted (or, in a dry run, would delete), per kind of record."""

    threads: int = 0
    messages: int = 0
    responses: int = 0
    events: int = 0
    conversations: int = 0
    """Those of the deleted threads and those that had no thread."""
    artifacts: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(
            **{field.name: getattr(self, field.name) + getattr(other, field.name) for field in dataclasses.fields(self)}
        )

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())

    def as_dict(self) -> dict[str, int]:
        """`{kind: count}`, in the order of the fields."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def __str__(self) -> str:
        return ", ".join(f"{kind}: {count}" for kind, count in self.as_dict().items())


class ServiceStore(Protocol):
    # --- threads and messages -----------------------------------------------------------------------------

    async def create_thread(self, thread: ThreadRecord, message: MessageRecord, response: ResponseRecord) -> None:
        """Write a new thread with its first user message and its queued response, all or nothing."""
        ...

    async def post_message(self, message: MessageRecord, response: ResponseRecord) -> ThreadRecord | None:
        """Add a user message and its queued response to the message's thread.

        Returns the updated thread, or `None` when the thread (of that owner) does not exist or still has an
        active response (the caller answers 404 or 409: `get_thread` tells which).
        """
        ...

    async def get_thread(self, owner: Owner, thread_id: str) -> ThreadRecord | None: ...

    async def list_threads(
        self, owner: Owner, *, limit: int = 20, before: datetime | None = None
    ) -> list[ThreadRecord]:
        """The owner's threads, most recently updated first; `before` pages on `updated_at`."""
        ...

    async def list_tenant_threads(
        self, tenant: str, *, limit: int = 20, before: datetime | None = None
    ) -> list[ThreadRecord]:
        """The threads of every end user of `tenant`, most recently updated first; `before` pages on `updated_at`.

        For a caller acting for the whole tenant (the AI conversations API lists them under a service key, as
        Omni lets an organization key read any conversation).
        """
        ...

    async def thread_owner(self, tenant: str, thread_id: str) -> Owner | None:
        """Whose thread this is, among the end users of `tenant`; `None` if it is not one of the tenant's."""
        ...

    async def list_messages(self, owner: Owner, thread_id: str) -> list[MessageRecord] | None:
        """The thread's messages, oldest first; `None` when there is no such thread for this owner."""
        ...

    async def get_message(self, owner: Owner, message_id: str) -> MessageRecord | None: ...

    async def set_feedback(self, owner: Owner, message_id: str, feedback: Feedback) -> MessageRecord | None:
        """Record feedback on an assistant message (replacing earlier feedback); `None` if not found."""
        ...

    # --- responses ----------------------------------------------------------------------------------------

    async def get_response(self, owner: Owner, response_id: str) -> ResponseRecord | None: ...

    async def response_owner(self, tenant: str, response_id: str) -> Owner | None:
        """Whose response this is, among the end users of `tenant`; `None` if it is not one of the tenant's.

        The one read that does not name the end user: for a caller acting for the whole tenant (the AI Jobs
        API reads a job by id alone under a service key, as Omni lets an organization key read any job).
        """
        ...

    async def create_job(self, thread: ThreadRecord | None, message: MessageRecord, response: ResponseRecord) -> bool:
        """Start an AI job: a new thread (when `thread` is given) or a message on an existing one, plus its
        response. `False` when the thread has an active response already (Omni answers 409 then)."""
        ...

    async def count_active(self, owner: Owner) -> tuple[int, int]:
        """How many responses are queued or running: (of the owner's end user, of the owner's whole tenant).

        What the service's caps on work in flight count, on every worker alike (`server/_admission.py`).
        """
        ...

    async def claim(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        """Take a queued response to run: status `running`, lease to `worker` until `lease_until`.

        `None` if it is not queued any more (canceled meanwhile, or claimed by another worker).
        """
        ...

    async def heartbeat(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        """Extend the lease; the record (with `cancel_requested`) while `worker` holds it, else `None`."""
        ...

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
        """Store more events (numbered on from the last) and, if given, the parts and progress so far and the
        conversation as the run last saved it, in one transaction.

        `False` (and nothing written) when `worker` no longer holds the lease.
        """
        ...

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
        """End a running response: its last `events` (numbered on from the last, as by `append`) and progress
        line if given, its status, the assistant message it wrote (if any), error and the conversation as the
        run last saved it, in one transaction; the lease is released. `False` (and nothing written) when
        `worker` no longer holds the lease.

        `first_seq`, when given, is the number of `events[0]`: those the store has already are skipped, so a
        run need not wait for an `append` still in flight (one that commits first wrote some of them; one
        that comes after `finish` is refused, the lease being released)."""
        ...

    async def request_cancel(self, owner: Owner, response_id: str, *, by: str) -> ResponseRecord | None:
        """Ask for a response to stop. A queued one is `canceled` at once; a running one gets
        `cancel_requested`; a finished one is returned as it is. `None` if not found."""
        ...

    async def expire_leases(self, now: datetime) -> list[ResponseRecord]:
        """End every running response whose lease ran out before `now`, and every queued one whose start
        deadline (`lease_expires_at`) passed unclaimed, as `failed` (error type `worker_lost`), writing an
        errored assistant message with the parts it had; returns them."""
        ...

    async def events_after(self, owner: Owner, response_id: str, seq: int) -> list[StoredEvent] | None:
        """The response's events with a number above `seq`, in order; `None` if not found."""
        ...

    async def wait_for_change(self, response_id: str, max_wait: float) -> None:
        """Return when the response may have changed (new events, status, cancel request), or after
        `max_wait` seconds. Polling backends may simply sleep a short interval."""
        ...

    async def prune(self, older_than: datetime, *, dry_run: bool = False) -> PruneCounts:
        """Delete the records last changed before `older_than` (see "Retention" above); what was deleted.

        A thread goes whole when it was last updated before then and none of its responses is queued or
        running; a conversation with no thread when it was last saved before then; an artifact when it was
        made before then. `dry_run` counts the same records and deletes nothing.
        """
        ...

    async def aclose(self) -> None: ...


class Store(ConversationStore, ServiceStore, Protocol):
    """A durable backend: the bridge's conversations and the service's records in one database."""
