"""What every durable backend does the same way: stamps, limits, and the records a lost or canceled run ends with.

Kept in one place so the SQLite and PostgreSQL backends cannot drift: a stamp is microseconds since the epoch and
always later than the last one, a refused write raises the same error text, and a response ended by the store
itself (worker lost, canceled while queued) carries the same error and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from omni_bridge.agent import ContentPart, ThinkingPart
from omni_bridge.exceptions import IdentityError
from omni_bridge.stores._records import MessageRecord, ResponseError, ResponseRecord

__all__ = [
    "CANCELED_QUEUED",
    "PARTS",
    "WORKER_LOST",
    "already_stored",
    "check_limit",
    "duplicate_conversation",
    "from_us",
    "lost_message",
    "next_stamp_us",
    "now",
    "rebound_conversation",
    "stored_response",
    "to_us",
    "without_thinking",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

WORKER_LOST = ResponseError(
    type="worker_lost",
    message="The server running this response stopped before it finished (its lease ran out); ask again.",
)
"""The error of a response ended by `expire_leases`."""
CANCELED_QUEUED = ResponseError(type="canceled", message="Canceled before it started.")
"""The error of a response canceled before it started: while queued, or before its engine produced anything."""
PARTS: TypeAdapter[list[ContentPart]] = TypeAdapter(list[ContentPart])


def already_stored(last_seq: int, first_seq: int | None) -> int:
    """How many of the events to write, numbered from `first_seq` (`None`: on from the last), the store has
    already, its last being `last_seq`: an append still in flight as the run finished may have written them."""
    return 0 if first_seq is None else max(last_seq + 1 - first_seq, 0)


def now() -> datetime:
    return datetime.now(UTC)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MICROSECOND


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def next_stamp_us(last_us: int | None) -> int:
    """Now, or a microsecond after the last stamp when the clock has not moved past it."""
    now_us = to_us(now())
    return now_us if last_us is None or now_us > last_us else last_us + 1


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit!r}")


def duplicate_conversation(conversation_id: str) -> ValueError:
    return ValueError(f"conversation {conversation_id!r} already exists")


def rebound_conversation(conversation_id: str) -> IdentityError:
    return IdentityError(f"conversation {conversation_id!r} belongs to another user; a save cannot rebind it")


def without_thinking(parts: Sequence[ContentPart]) -> list[ContentPart]:
    """The parts a finished message may keep: all but `thinking`."""
    return [part for part in parts if not isinstance(part, ThinkingPart)]


def stored_response(response: ResponseRecord) -> dict[str, Any]:
    """The response as stored: JSON-ready, with the webhook secret in clear (JSON mode masks a `SecretStr`, and
    the worker that runs a job needs the real secret to sign its webhooks)."""
    record = response.model_dump(mode="json")
    if response.webhook is not None:
        record["webhook"]["secret"] = response.webhook.secret.get_secret_value()
    return record


def lost_message(response: ResponseRecord) -> MessageRecord:
    """The errored assistant message of a response whose worker was lost: the parts it had, thinking left out."""
    return MessageRecord(
        thread_id=response.thread_id,
        owner=response.owner,
        role="assistant",
        parts=without_thinking(response.parts),
        outcome="errored",
        response_id=response.id,
    )
