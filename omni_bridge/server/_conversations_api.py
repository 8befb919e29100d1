"""The Omni-compatible AI conversations API served by the bridge: `GET /api/v1/ai/conversations` and `/{id}`.

The conversations are those the AI Jobs API started (a thread with `JobFacts`; a thread of the thread API is not
an AI conversation here, as `conversationId` of a job cannot name one). Omni's key rules, with the bridge's
service key in the place of the organization key: the key reads every conversation of its tenant, and naming an
end user (`?userId=` or `X-Bridge-User`) narrows the list and the reads to that user's. A tenant never sees
another tenant's end users: naming one is a 404 `User … not found`, and their conversations are not found.
The bridge has no personal tokens, so Omni's "a personal token reads only its own user's" has no counterpart.

Listing is most recent first, `{data: [{id, name, lastUserPrompt, updatedAt, createdAt}], pageInfo}`, paged by
an opaque cursor (the `updatedAt` of the page's last conversation). A conversation's history lists its messages
oldest first; each assistant turn carries the `jobId` that wrote it and the conversation's `omniChatUrl`.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.server._envelope import ApiError, OmniErrorBody
from omni_bridge.server._jobs_models import JobFacts, answer_text, iso_time, organization_id
from omni_bridge.server._openapi import ApiRoute, Operation, Param
from omni_bridge.stores import ThreadRecord

if TYPE_CHECKING:
    from omni_bridge.server._jobs_api import JobsApi

__all__ = ["conversation_routes"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_BATCH = 100
_MAX_BATCHES = 50
"""Store pages read at most to fill one page of AI conversations (threads of the thread API are skipped)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationSummary(_Body):
    id: str
    name: str | None
    lastUserPrompt: str | None
    updatedAt: str
    createdAt: str


class ConversationPageInfo(_Body):
    hasNextPage: bool
    nextCursor: str | None
    pageSize: int


class ConversationList(_Body):
    data: list[ConversationSummary]
    pageInfo: ConversationPageInfo


class ConversationMessage(_Body):
    role: str
    content: str
    timestamp: str
    jobId: str | None = None
    omniChatUrl: str | None = None


class ConversationDetail(_Body):
    id: str
    name: str | None
    userId: str
    organizationId: str
    createdAt: str
    updatedAt: str
    messages: list[ConversationMessage]


def _iso(moment: datetime) -> str:
    return iso_time(moment) or ""


def _error(status: int, detail: str) -> ApiError:
    """An error in Omni's shape, `{"detail": detail, "status": status}`."""
    return ApiError(status, "not_found" if status == 404 else "invalid_request", detail)


def _cursor(moment: datetime) -> str:
    return base64.urlsafe_b64encode(moment.isoformat().encode()).decode().rstrip("=")


def _before(cursor: str) -> datetime:
    try:
        moment = datetime.fromisoformat(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _error(400, "Bad Request: cursor is not one this API returned") from None
    if moment.tzinfo is None:
        raise _error(400, "Bad Request: cursor is not one this API returned")
    return moment


class ConversationsApi:
    """The two routes, sharing the jobs API's way of authenticating the key and naming the end user."""

    def __init__(self, jobs: JobsApi) -> None:
        self._jobs = jobs

    @property
    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute(_operation("", "aiConversationList", "List AI conversations", ConversationList), self.list),
            ApiRoute(
                _operation("/{conversation_id}", "aiConversationGet", "Get an AI conversation", ConversationDetail),
                self.get,
            ),
        ]

    async def list(self, request: Request) -> Response:
        """`GET /api/v1/ai/conversations`: the AI conversations, most recent first."""
        tenant, owner = await self._jobs.reader(request)
        size = _page_size(request)
        raw_cursor = request.query_params.get("cursor") or None
        before = _before(raw_cursor) if raw_cursor else None
        store = self._jobs.service.store
        found: list[tuple[ThreadRecord, JobFacts]] = []
        for _ in range(_MAX_BATCHES):
            if owner is None:
                batch = await store.list_tenant_threads(tenant, limit=_BATCH, before=before)
            else:
                batch = await store.list_threads(owner, limit=_BATCH, before=before)
            for thread in batch:
                facts = JobFacts.of(thread)
                if facts is not None:
                    found.append((thread, facts))
            if len(found) > size or len(batch) < _BATCH:
                break
            before = batch[-1].updated_at
        page = found[:size]
        data = [
            ConversationSummary(
                id=thread.id,
                name=thread.title,
                lastUserPrompt=await self._last_prompt(thread),
                updatedAt=_iso(thread.updated_at),
                createdAt=_iso(thread.created_at),
            )
            for thread, _facts in page
        ]
        more = len(found) > size
        info = ConversationPageInfo(
            hasNextPage=more, nextCursor=_cursor(page[-1][0].updated_at) if more else None, pageSize=size
        )
        return JSONResponse(ConversationList(data=data, pageInfo=info).model_dump(mode="json"))

    async def _last_prompt(self, thread: ThreadRecord) -> str | None:
        messages = await self._jobs.service.store.list_messages(thread.owner, thread.id) or []
        prompts = [answer_text(m.parts) for m in messages if m.role == "user"]
        return prompts[-1] if prompts else None

    async def get(self, request: Request) -> Response:
        """`GET /api/v1/ai/conversations/{conversationId}`: the whole history, oldest first."""
        tenant, owner = await self._jobs.reader(request)
        conversation_id = request.path_params["conversation_id"]
        try:
            uuid.UUID(conversation_id)
        except ValueError:
            raise _error(400, f"Bad Request: conversationId must be a UUID, got {conversation_id[:64]!r}") from None
        store = self._jobs.service.store
        owner = owner or await store.thread_owner(tenant, conversation_id)
        thread = await store.get_thread(owner, conversation_id) if owner is not None else None
        facts = JobFacts.of(thread) if thread is not None else None
        messages = await store.list_messages(thread.owner, thread.id) if thread is not None else None
        if thread is None or facts is None or messages is None:
            raise _error(404, f"Conversation {conversation_id} not found")
        turns = [
            ConversationMessage(
                role=m.role,
                content=answer_text(m.parts),
                timestamp=_iso(m.created_at),
                jobId=m.response_id if m.role == "assistant" else None,
                omniChatUrl=facts.chat_url if m.role == "assistant" else None,
            )
            for m in messages
        ]
        detail = ConversationDetail(
            id=thread.id,
            name=thread.title,
            userId=facts.user_id,
            organizationId=organization_id(tenant),
            createdAt=_iso(thread.created_at),
            updatedAt=_iso(thread.updated_at),
            messages=turns,
        )
        return JSONResponse(detail.model_dump(mode="json", exclude_none=True))


def _page_size(request: Request) -> int:
    raw = request.query_params.get("pageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        value = int(raw)
    except ValueError:
        raise _error(400, f"Bad Request: pageSize must be an integer, got {raw[:32]!r}") from None
    return min(max(value, 1), MAX_PAGE_SIZE)


_PARAMS = (
    Param(
        "userId",
        "query",
        {"type": "string", "format": "uuid"},
        "Only this Omni user's conversations (else every conversation of the key's tenant).",
    ),
    Param(
        "X-Bridge-User",
        "header",
        {"type": "string"},
        "Or: the end user's external id (the bridge's way).",
        example="alice",
    ),
)
_LIST_PARAMS = (
    Param(
        "pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "Conversations per page.", example=20
    ),
    Param("cursor", "query", {"type": "string"}, "`pageInfo.nextCursor` of the page before."),
)
_ID = Param(
    "conversation_id", "path", {"type": "string", "format": "uuid"}, "The conversation's id.",
    example="1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b",
)  # fmt: skip


def _operation(suffix: str, operation_id: str, summary: str, answer: type[BaseModel]) -> Operation:
    listing = suffix == ""
    return Operation(
        method="GET",
        path="/api/v1/ai/conversations" + suffix,
        operation_id=operation_id,
        summary=summary,
        tag="AI jobs (Omni-compatible)",
        description="Answers as Omni's AI conversations API does: same fields, paging and errors.",
        params=(*_PARAMS, *_LIST_PARAMS) if listing else (_ID, *_PARAMS),
        status=200,
        data=answer,
        errors=(400, 404, 502),
        envelope=False,
        error_body=OmniErrorBody,
    )


def conversation_routes(jobs: JobsApi) -> list[ApiRoute]:
    """The AI conversations routes, on the jobs API's authentication."""
    return ConversationsApi(jobs).routes
