"""The AI conversations API: `GET /api/v1/ai/conversations` (most recent first, cursor paging) and `/{id}`.

Omni's rules for who reads what: an organization key reads any conversation of the organization (`?userId=`
narrows the list, and the reads, to that user's); a personal token reads only its own user's, and naming
another user with it is a 403. Another user's conversation, or one that does not exist, is a 404, as jobs are.

A conversation's history is made from its jobs, oldest first: the prompt of each as a `user` turn, and the
answer of each COMPLETE job as an `assistant` turn carrying its `jobId` and `omniChatUrl` (a job that failed or
was cancelled gave no answer, so it adds no assistant turn: a guess, Omni does not say). The cursor is opaque:
the sort key of the last conversation of the page, base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._job_store import ConversationRecord
from omni_bridge.sandbox._jobs import ORGANIZATION_ID, JobState
from omni_bridge.sandbox._rest_input import acting_user, int_param

if TYPE_CHECKING:
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["get_conversation", "list_conversations"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def _reader(sandbox: Sandbox, request: Request, caller: Caller) -> str | None:
    """The user whose conversations the request may read, or `None` for an org key reading them all."""
    user = acting_user(sandbox, request, caller)
    return None if caller.is_org_key and "userId" not in request.query_params else user.id


def _cursor_of(record: ConversationRecord) -> str:
    return base64.urlsafe_b64encode(json.dumps([record.updated_at, record.id]).encode()).decode().rstrip("=")


def _after(cursor: str) -> tuple[str, str]:
    try:
        updated_at, conversation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise SandboxHTTPError(400, "Bad Request: cursor is not one this API returned") from None
    if not isinstance(updated_at, str) or not isinstance(conversation_id, str):
        raise SandboxHTTPError(400, "Bad Request: cursor is not one this API returned")
    return updated_at, conversation_id


async def list_conversations(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    reader = _reader(sandbox, request, caller)
    size = int_param(request, "pageSize", DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    records = sorted(
        (c for c in sandbox.jobs.conversations.values() if reader in (None, c.user_id)),
        key=lambda c: (c.updated_at, c.id),
        reverse=True,
    )
    cursor = request.query_params.get("cursor")
    if cursor:
        after = _after(cursor)
        records = [c for c in records if (c.updated_at, c.id) < after]
    page = records[:size]
    more = len(records) > size
    data = [
        {
            "id": c.id,
            "name": c.name,
            "lastUserPrompt": _last_prompt(sandbox, c.id),
            "updatedAt": c.updated_at,
            "createdAt": c.created_at,
        }
        for c in page
    ]
    page_info = {"hasNextPage": more, "nextCursor": _cursor_of(page[-1]) if more else None, "pageSize": size}
    return JSONResponse({"data": data, "pageInfo": page_info})


async def get_conversation(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    reader = _reader(sandbox, request, caller)
    conversation_id = request.path_params["conversation_id"]
    try:
        uuid.UUID(conversation_id)
    except ValueError:
        raise SandboxHTTPError(
            400, f"Bad Request: conversationId must be a UUID, got {conversation_id[:64]!r}"
        ) from None
    record = sandbox.jobs.conversations.get(conversation_id)
    if record is None or reader not in (None, record.user_id):
        raise SandboxHTTPError(404, f"Conversation {conversation_id} not found")
    messages: list[dict[str, Any]] = []
    for job in _jobs_of(sandbox, conversation_id):
        messages.append({"role": "user", "content": job.prompt, "timestamp": job.created_at})
        if job.state is JobState.COMPLETE and job.result is not None:
            messages.append(
                {
                    "role": "assistant",
                    "content": job.result["message"],
                    "timestamp": job.completed_at,
                    "jobId": job.id,
                    "omniChatUrl": job.chat_url,
                }
            )
    body = {
        "id": record.id,
        "name": record.name,
        "userId": record.user_id,
        "organizationId": ORGANIZATION_ID,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "messages": messages,
    }
    return JSONResponse(body)


def _jobs_of(sandbox: Sandbox, conversation_id: str) -> list[Any]:
    jobs = [j for j in list(sandbox.jobs.jobs.values()) if j.conversation_id == conversation_id]
    return sorted(jobs, key=lambda j: (j.created_at, j.id))


def _last_prompt(sandbox: Sandbox, conversation_id: str) -> str | None:
    jobs = _jobs_of(sandbox, conversation_id)
    return jobs[-1].prompt if jobs else None
