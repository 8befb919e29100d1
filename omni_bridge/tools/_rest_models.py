"""Typed bodies of the Omni REST answers the bridge reads: embed users, models and topics, AI Jobs.

Attributes are snake_case; each model reads (and, with `model_dump()`, writes) Omni's own key spelling, which is
camelCase for most endpoints and snake_case for topics. Every model accepts keys it does not know and keeps them
(`model_extra`): Omni adds fields over time, and a new field must never break a client that does not use it.
Only the keys Omni documents as always present are required.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "DENIAL_CODES",
    "ConversationDetail",
    "ConversationMessage",
    "ConversationPage",
    "ConversationSummary",
    "EmbedUser",
    "JobAction",
    "JobCancelled",
    "JobCreated",
    "JobError",
    "JobProgress",
    "JobResult",
    "JobState",
    "JobStatus",
    "ListPage",
    "ModelInfo",
    "ModelPage",
    "PageInfo",
    "QueryActionResult",
    "ScimEmail",
    "ScimGroup",
    "ScimListResponse",
    "SessionCreated",
    "TopicInfo",
    "TopicList",
    "V0UserPage",
]


class _OmniBody(BaseModel):
    """Base of Omni's camelCase bodies: unknown keys kept, read by alias or by name, written by alias."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )


class ListPage(BaseModel):
    """Base of the pages the client reads and drops: unknown keys allowed, read by alias or by name."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)


class PageInfo(ListPage):
    """The cursor of a paged Omni list: follow `next_cursor` while `has_next_page`."""

    has_next_page: bool = False
    next_cursor: str | None = None


# --- embed users (SCIM) ----------------------------------------------------------------------------------


class ScimEmail(_OmniBody):
    value: str
    primary: bool = False


class ScimGroup(_OmniBody):
    display: str
    value: str | None = None


class EmbedUser(_OmniBody):
    """An Omni embed user, as SCIM `GET /api/scim/v2/embed/users` lists it."""

    id: str
    """The Omni user id (UUID): what `userId` and `X-MCP-User-ID` take."""
    embed_external_id: str | None = None
    """The `externalId` given at SSO (the runtime's own user key); compared case-sensitively."""
    user_name: str | None = None
    display_name: str | None = None
    active: bool = True
    emails: list[ScimEmail] = Field(default_factory=list)
    groups: list[ScimGroup] = Field(default_factory=list)
    embed_email: str | None = None
    embed_entity: str | None = None
    meta: dict[str, Any] | None = None

    @classmethod
    def from_v0_record(cls, record: dict[str, Any]) -> EmbedUser:
        """Map a record of the older `GET /api/v0/users/embed` list onto the SCIM shape."""
        return cls(
            id=record["id"],
            embed_external_id=record.get("externalId"),
            display_name=record.get("name"),
            embed_email=record.get("email"),
            embed_entity=record.get("entity"),
            groups=[ScimGroup(display=g) for g in record.get("groups") or []],
        )


class ScimListResponse(_OmniBody):
    """A SCIM ListResponse page."""

    resources: list[EmbedUser] = Field(default_factory=list, alias="Resources")
    total_results: int = 0
    start_index: int = 1
    items_per_page: int = 0


class V0UserPage(ListPage):
    """A page of the older `GET /api/v0/users/embed` list (raw records, see `EmbedUser.from_v0_record`)."""

    records: list[dict[str, Any]] = Field(default_factory=list)
    page_info: PageInfo = PageInfo()


class SessionCreated(ListPage):
    """The answer of `POST /api/v1/embed/sso/generate-session`."""

    session_id: str = Field(min_length=1)


# --- models and topics -------------------------------------------------------------------------------------


class ModelInfo(_OmniBody):
    """One record of `GET /api/v1/models`."""

    id: str
    name: str | None = None
    model_kind: str | None = None
    connection_id: str | None = None
    base_model_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class TopicInfo(BaseModel):
    """One topic of `GET /api/v1/models/{modelId}/topic`; this endpoint spells its keys in snake_case."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    base_view_name: str | None = None
    label: str | None = None
    description: str | None = None
    group_label: str | None = None
    hidden: bool = False


class ModelPage(ListPage):
    """A page of `GET /api/v1/models`."""

    records: list[ModelInfo] = Field(default_factory=list)
    page_info: PageInfo = PageInfo()


class TopicList(ListPage):
    """The answer of `GET /api/v1/models/{modelId}/topic`."""

    topics: list[TopicInfo] = Field(default_factory=list)


# --- AI jobs -------------------------------------------------------------------------------------------------


class JobState(StrEnum):
    """The state of an AI job; `COMPLETE`, `FAILED` and `CANCELLED` are terminal."""

    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    DELIVERING = "DELIVERING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in (JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED)


class JobCreated(_OmniBody):
    """The 201 answer of `POST /api/v1/ai/jobs`."""

    job_id: str
    conversation_id: str
    omni_chat_url: str


class JobProgress(_OmniBody):
    """What an `EXECUTING` job is doing now."""

    iteration: int | None = None
    message: str | None = None
    updated_at: datetime | None = None


DENIAL_CODES = frozenset({"AI_CREDIT_LIMIT_EXCEEDED", "JOB_DENIED", "DENIED", "CREDIT_LIMIT_EXCEEDED"})
"""Error codes that mean Omni denied the job (e.g. over the AI credit limit) rather than failed at it. Omni
documents the `job.denied` webhook and its `reason`, not how a polled denied job looks: these are guesses, and
a `reason` on the error counts as a denial too."""


class JobError(_OmniBody):
    """Why a job `FAILED`, e.g. `code="QUERY_EXECUTION_ERROR"`."""

    message: str
    code: str | None = None
    detail: str | None = None
    reason: str | None = None
    """Why Omni denied the job (`job.denied`), when it was denied rather than failed."""

    @property
    def denial_reason(self) -> str | None:
        """Why the job was denied (over the AI credit limit, …), or `None` when it simply failed."""
        if self.reason:
            return self.reason
        if (self.code or "").upper() in DENIAL_CODES:
            return self.message
        return None


class JobStatus(_OmniBody):
    """`GET /api/v1/ai/jobs/{jobId}`. State-specific fields are `None` in other states."""

    id: str
    state: JobState
    conversation_id: str
    prompt: str | None = None
    model_id: str | None = None
    branch_id: str | None = None
    organization_id: str | None = None
    user_id: str | None = None
    topic_name: str | None = None
    """`None` when the AI picked the topic."""
    omni_chat_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    execution_started_at: datetime | None = None
    progress: JobProgress | None = None
    """Only while `EXECUTING`, and possibly `None` even then."""
    result_summary: str | None = None
    """Markdown; only when `COMPLETE`."""
    completed_at: datetime | None = None
    error: JobError | None = None
    """Only when `FAILED`."""
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None


class QueryActionResult(_OmniBody):
    """The `result` of a `generate_query` action: the query, and its rows as CSV."""

    query_name: str | None = None
    status: str | None = None
    """`success` or `error`."""
    has_results: bool = False
    total_row_count: int | None = None
    csv_result: str | None = None
    csv_result_was_truncated: bool = False
    query: dict[str, Any] | None = None
    """A semantic query `/api/v1/query/run` accepts."""
    result_id: str | None = None


class JobAction(_OmniBody):
    """One step the AI took (`generate_query`, `summarize`, `failure`, and types Omni has not documented).

    A `failure` action (a step that failed, seen in Omni's live results) has no `timestamp`; neither is required.
    """

    type: str
    message: str | None = None
    timestamp: datetime | None = None
    result: QueryActionResult | None = None


class JobResult(_OmniBody):
    """`GET /api/v1/ai/jobs/{jobId}/result` of a `COMPLETE` job."""

    message: str | None = None
    """The final answer, markdown."""
    result_summary: str | None = None
    topic: str | None = None
    omni_chat_url: str | None = None
    actions: list[JobAction] = Field(default_factory=list)

    @property
    def query_results(self) -> list[QueryActionResult]:
        """The results of the job's `generate_query` actions, in order."""
        return [a.result for a in self.actions if a.result is not None]

    @property
    def failures(self) -> list[str]:
        """What each `failure` action says went wrong, in order."""
        return [a.message or "A step failed" for a in self.actions if a.type == "failure"]


class JobCancelled(_OmniBody):
    """The answer of `POST /api/v1/ai/jobs/{jobId}/cancel`: the job's state after the request."""

    job_id: str
    state: JobState


# --- AI conversations ------------------------------------------------------------------------------------


class ConversationSummary(_OmniBody):
    """One conversation of `GET /api/v1/ai/conversations`."""

    id: str
    name: str | None = None
    last_user_prompt: str | None = None
    updated_at: datetime | None = None
    created_at: datetime | None = None


class ConversationPage(ListPage):
    """A page of `GET /api/v1/ai/conversations`, most recent first; follow `page_info.next_cursor`."""

    data: list[ConversationSummary] = Field(default_factory=list)
    page_info: PageInfo = PageInfo()


class ConversationMessage(_OmniBody):
    """One turn of a conversation; an assistant turn carries the `job_id` that answered it and its link."""

    role: str
    content: str = ""
    timestamp: datetime | None = None
    job_id: str | None = None
    omni_chat_url: str | None = None


class ConversationDetail(_OmniBody):
    """`GET /api/v1/ai/conversations/{conversationId}`: the whole history, oldest first."""

    id: str
    user_id: str | None = None
    organization_id: str | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    messages: list[ConversationMessage] = Field(default_factory=list)
