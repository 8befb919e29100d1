"""A conversation: the transcript one end user builds with an engine, bound to that user for life.

The record is what a `ConversationStore` keeps: the Anthropic Messages-API transcript as plain JSON dicts
(so it is sent back to the API as it is and stored without a translation layer), the Omni conversation id
the `omni` engine continues, and the usage totals. `repair_transcript` makes a transcript that a dead or
cancelled run left half-written acceptable to the Messages API again.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from pydantic import AwareDatetime, BaseModel, Field

from omni_bridge.agent.events import Usage
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.exceptions import IdentityError
from omni_bridge.types import EngineName

__all__ = ["INTERRUPTED_TOOL_RESULT", "Conversation", "new_conversation_id", "repair_transcript"]

INTERRUPTED_TOOL_RESULT = "The tool call was interrupted before it finished."
"""The content of the `is_error` result `repair_transcript` gives a tool call that never got one."""


def new_conversation_id() -> str:
    """A fresh conversation id."""
    return "conv_" + uuid4().hex[:24]


def _now() -> datetime:
    return datetime.now(UTC)


def _identity_key(identity: OmniIdentity) -> tuple[str, str]:
    # The same instance is sometimes written with a trailing slash or in another case.
    return identity.server.rstrip("/").lower(), identity.user_id


class Conversation(BaseModel):
    """One conversation, as a store keeps it. `id`, `identity`, `engine` and `created_at` never change."""

    id: str = Field(default_factory=new_conversation_id, frozen=True)
    identity: OmniIdentity = Field(frozen=True)
    """The end user the conversation acts for; every later request must come from the same Omni user."""
    engine: EngineName = Field(default="claude", frozen=True)
    """Which engine answers: the Claude agent loop, or Omni's own agent through AI Jobs."""
    created_at: AwareDatetime = Field(default_factory=_now, frozen=True)
    updated_at: AwareDatetime = Field(default_factory=_now)
    """When a store last saved the conversation (stores set it)."""
    title: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    """The Messages-API transcript: `{"role": ..., "content": str | [block, ...]}` dicts, oldest first."""
    omni_conversation_id: str | None = None
    """The `omni` engine's Omni `conversationId`, once Omni has answered the first question."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens spent on the conversation so far."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Whatever the embedding application wants kept with the conversation (JSON values)."""

    def is_bound_to(self, identity: OmniIdentity) -> bool:
        """True when `identity` is the Omni user (on the same Omni instance) the conversation acts for."""
        return _identity_key(identity) == _identity_key(self.identity)

    def check_identity(self, identity: OmniIdentity) -> None:
        """Refuse to act for anyone but the Omni user the conversation is bound to.

        Args:
            identity: who is asking to continue the conversation.

        Raises:
            IdentityError: `identity` is another Omni user (or the same id on another Omni instance).
        """
        if not self.is_bound_to(identity):
            # Name neither Omni user: the caller must not learn whose conversation this is.
            raise IdentityError(
                f"conversation {self.id!r} belongs to another user; "
                f"it cannot be continued for external id {identity.external_id!r}"
            )


def repair_transcript(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return a copy of `messages` that the Messages API accepts, after a run died half-way.

    - every assistant `tool_use` is answered by a `tool_result` (same `tool_use_id`) at the start of the next
      user message; a missing one becomes an `is_error` result saying the call was interrupted;
    - `tool_result` blocks that answer no `tool_use` of the message just before (or answer one twice) go;
    - blank text blocks and messages left without content go (a trailing empty assistant message included);
    - consecutive messages of the same role are merged into one.

    A transcript that is already valid comes back equal to the input. The input is never modified.
    """
    repaired = [_without_blank_text(message) for message in copy.deepcopy(messages)]
    repaired = _merge_same_role([message for message in repaired if not _is_empty(message)])
    repaired = _drop_stray_results(repaired)
    repaired = _merge_same_role([message for message in repaired if not _is_empty(message)])
    return _answer_tool_uses(repaired)


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    return list(content or [])


def _is_empty(message: dict[str, Any]) -> bool:
    return not _blocks(message)


def _is_blank_text(block: dict[str, Any]) -> bool:
    return block.get("type") == "text" and not str(block.get("text", "")).strip()


def _without_blank_text(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list) and any(_is_blank_text(block) for block in content):
        return {**message, "content": [block for block in content if not _is_blank_text(block)]}
    return message


def _merge_same_role(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for message in messages:
        if merged and merged[-1].get("role") == message.get("role"):
            merged[-1] = {**merged[-1], "content": _blocks(merged[-1]) + _blocks(message)}
        else:
            merged.append(message)
    return merged


def _tool_use_ids(message: dict[str, Any] | None) -> list[str]:
    if message is None or message.get("role") != "assistant":
        return []
    return [block["id"] for block in _blocks(message) if block.get("type") == "tool_use"]


def _drop_stray_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        blocks = _blocks(message)
        if message.get("role") != "user" or not any(block.get("type") == "tool_result" for block in blocks):
            kept.append(message)
            continue
        open_ids = set(_tool_use_ids(messages[index - 1] if index else None))
        content: list[dict[str, Any]] = []
        for block in blocks:
            if block.get("type") == "tool_result":
                if block.get("tool_use_id") not in open_ids:
                    continue
                open_ids.discard(block["tool_use_id"])
            content.append(block)
        kept.append(message if content == blocks else {**message, "content": content})
    return kept


def _answer_tool_uses(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answered: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if index and _answers(message, messages[index - 1]):
            continue  # appended, repaired, right after the assistant message it answers
        answered.append(message)
        tool_use_ids = _tool_use_ids(message)
        if not tool_use_ids:
            continue
        following = messages[index + 1] if index + 1 < len(messages) else None
        if following is None or not _answers(following, message):
            following = {"role": "user", "content": []}
        answered.append(_with_results(following, tool_use_ids))
    return answered


def _answers(message: dict[str, Any], previous: dict[str, Any]) -> bool:
    """True when `message` is the user message that must hold the results of `previous`'s tool calls."""
    return message.get("role") == "user" and bool(_tool_use_ids(previous))


def _with_results(message: dict[str, Any], tool_use_ids: list[str]) -> dict[str, Any]:
    """`message` with a result for each of `tool_use_ids`, results first (the API requires that order)."""
    blocks = _blocks(message)
    results = [block for block in blocks if block.get("type") == "tool_result"]
    others = [block for block in blocks if block.get("type") != "tool_result"]
    present = {block.get("tool_use_id") for block in results}
    missing = [
        {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": True, "content": INTERRUPTED_TOOL_RESULT}
        for tool_use_id in tool_use_ids
        if tool_use_id not in present
    ]
    content = results + missing + others
    return message if content == message.get("content") else {**message, "content": content}
