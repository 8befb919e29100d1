"""The AI conversations calls of `OmniRestClient`: list a user's conversations with Omni's AI, and read one.

Omni's rules: an organization key reads any conversation (`userId` narrows it to that user's), a personal token
only its own user's. The bridge acts with an organization key and always names the user, so a conversation of
another user is not found (404) rather than read.
"""

from __future__ import annotations

from omni_bridge.tools._rest_models import ConversationDetail, ConversationPage
from omni_bridge.tools._rest_transport import RestTransport, parse_answer, path_segment

__all__ = ["ConversationCalls"]


class ConversationCalls(RestTransport):
    """Omni's AI conversations API (`/api/v1/ai/conversations`)."""

    async def list_conversations(
        self, *, user_id: str | None = None, page_size: int | None = None, cursor: str | None = None
    ) -> ConversationPage:
        """One page of conversations, most recent first (`page_size` 1 to 100; follow `page_info.next_cursor`).

        Raises:
            OmniHTTPError: Omni refused the request (403: a personal token naming another user).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        params: dict[str, str] = {}
        if user_id is not None:
            params["userId"] = user_id
        if page_size is not None:
            params["pageSize"] = str(page_size)
        if cursor is not None:
            params["cursor"] = cursor
        path = "/api/v1/ai/conversations"
        return parse_answer(ConversationPage, await self._request("GET", path, params=params), "GET", path)

    async def get_conversation(self, conversation_id: str, *, user_id: str | None = None) -> ConversationDetail:
        """A conversation's whole history; each assistant turn names the job that answered it.

        Raises:
            OmniHTTPError: 404 when Omni has no such conversation (or not for this user), or another refusal.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/conversations/{path_segment(conversation_id)}"
        params = {"userId": user_id} if user_id is not None else None
        return parse_answer(ConversationDetail, await self._request("GET", path, params=params), "GET", path)
