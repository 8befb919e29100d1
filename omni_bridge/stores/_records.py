"""What the HTTP service keeps: threads, messages, responses (with their events) and feedback.

A thread is a bridge conversation (same id) seen through the thread-centric API; a response is one run of an
engine answering one user message. AI jobs (the Omni-compatible API) are responses too, started by a job
request instead of a message post: one record type, two API faces.

Every record carries its `Owner` (the calling backend's tenant and the end user it named). Stores look
records up by id *and* owner, so another user's record is simply not found (404, never 403).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, SecretStr

from omni_bridge.agent import ContentPart
from omni_bridge.exceptions import ErrorType, ForeignErrorCode
from omni_bridge.types import EngineName

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Feedback",
    "MessageRecord",
    "Owner",
    "ResponseError",
    "ResponseRecord",
    "ResponseStatus",
    "StoredEvent",
    "ThreadRecord",
    "WebhookTarget",
    "new_id",
]

ResponseStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})


def new_id(prefix: str) -> str:
    """`<prefix>_<32 hex>`; thread ids double as conversation ids, job ids must be UUIDs (see `ResponseRecord`)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def _now() -> datetime:
    return datetime.now(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Owner(_Record):
    """Whose a record is: the tenant (the service key's name) and the end user's external id within it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    user: str


class ThreadRecord(_Record):
    id: str = Field(default_factory=lambda: new_id("thr"))
    """Also the bridge conversation id of the thread."""
    owner: Owner
    title: str | None = None
    engine: EngineName
    created_at: AwareDatetime = Field(default_factory=_now)
    updated_at: AwareDatetime = Field(default_factory=_now)
    current_response_id: str | None = None
    """The latest response of the thread (running or finished)."""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class Feedback(_Record):
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=4000)
    created_at: AwareDatetime = Field(default_factory=_now)


class MessageRecord(_Record):
    """A message of a thread. Immutable once written, except for its feedback."""

    id: str = Field(default_factory=lambda: new_id("msg"))
    thread_id: str
    owner: Owner
    role: Literal["user", "assistant"]
    parts: list[ContentPart]
    """User messages: one text part. Assistant messages: the finished content parts (never `thinking`)."""
    outcome: Literal["completed", "errored", "canceled"] | None = None
    """Assistant messages only: how the response that wrote it ended."""
    response_id: str | None = None
    """The response this message started (user) or was written by (assistant)."""
    created_at: AwareDatetime = Field(default_factory=_now)
    feedback: Feedback | None = None


class ResponseError(_Record):
    type: ErrorType | ForeignErrorCode
    """Machine-readable kind, e.g. `worker_lost`, `overloaded_error`, `omni_unavailable`."""
    message: str


class WebhookTarget(_Record):
    """Where an AI job reports; the secret signs the payloads and is never shown back."""

    url: str
    secret: SecretStr
    metadata: dict[str, JsonValue] | None = None
    progress: bool = False


class ResponseRecord(_Record):
    """One run answering one user message. Pollable: `parts` grows while it runs."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    """A UUID, so a response can also be an Omni-compatible AI job (`jobId`)."""
    thread_id: str
    owner: Owner
    user_message_id: str
    prompt: str
    status: ResponseStatus = "queued"
    parts: list[ContentPart] = Field(default_factory=list)
    """Content so far, `thinking` included while it runs; the finished message's parts once it is over."""
    message_id: str | None = None
    """The assistant message it wrote, once finished."""
    error: ResponseError | None = None
    origin: Literal["thread", "job"] = "thread"
    webhook: WebhookTarget | None = None
    progress: str | None = None
    """The latest progress line (tool running, Omni's agent step), for pollers."""
    worker: str | None = None
    """The worker holding the lease while it runs."""
    lease_expires_at: AwareDatetime | None = None
    """Running: the end of the worker's lease. Queued: when a worker must have claimed it; past either,
    `expire_leases` ends the response as lost."""
    cancel_requested: bool = False
    created_at: AwareDatetime = Field(default_factory=_now)
    updated_at: AwareDatetime = Field(default_factory=_now)
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    canceled_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class StoredEvent(_Record):
    """One event of a response, numbered from 1 in the order it happened (for SSE replay)."""

    seq: int
    event: dict[str, JsonValue]
    """The event as JSON (`EventAdapter.dump_python(event, mode="json")`)."""
