"""The conversation-store contract the `Bridge` relies on, and its default: conversations in memory.

Every store has the same contract (`ConversationStore`): a conversation is written as one whole record, so a
reader never sees half a save; `save` stamps `updated_at` strictly later than any earlier stamp of the same
store, so `list` order is the order of the saves even when the clock does not move; and a save can never
rebind a conversation to another Omni user. Artifacts are kept beside the conversations, under the
`ArtifactStore` contract of the tools layer (an artifact is only found by its owner).

Durable backends (one SQLite file, one PostgreSQL pool, holding the HTTP service's records too) live in
`omni_bridge.stores`; `MemoryConversationStore` is the library default, gone when the process ends.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from omni_bridge._bounded import BoundedMap
from omni_bridge.agent.conversation import Conversation
from omni_bridge.exceptions import IdentityError
from omni_bridge.tools import ArtifactStore, MemoryArtifactStore

__all__ = ["ConversationStore", "MemoryConversationStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


class ConversationStore(Protocol):
    """What every conversation store does. Use one as an async context manager, or call `aclose()`."""

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifacts kept with the conversations."""
        ...

    async def create(self, conversation: Conversation) -> None:
        """Store a new conversation and stamp its `updated_at`.

        Raises:
            ValueError: a conversation with the same id exists.
        """
        ...

    async def get(self, conversation_id: str) -> Conversation | None:
        """The conversation as last saved (a copy), or `None`."""
        ...

    async def save(self, conversation: Conversation) -> None:
        """Write the whole conversation (created if new) and stamp its `updated_at`.

        Raises:
            IdentityError: the stored conversation of that id is bound to another Omni user.
        """
        ...

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        """The most recently saved conversations first, optionally only those of one end user."""
        ...

    async def delete(self, conversation_id: str) -> bool:
        """Forget a conversation; `True` when it existed."""
        ...

    async def aclose(self) -> None:
        """Release the store; closing twice is harmless, using it afterwards raises `RuntimeError`."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _next_stamp_us(last_us: int | None) -> int:
    """Now, or a microsecond after the last stamp when the clock has not moved past it."""
    now_us = _to_us(datetime.now(UTC))
    return now_us if last_us is None or now_us > last_us else last_us + 1


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit!r}")


def _duplicate(conversation_id: str) -> ValueError:
    return ValueError(f"conversation {conversation_id!r} already exists")


def _rebound(conversation_id: str) -> IdentityError:
    return IdentityError(f"conversation {conversation_id!r} belongs to another user; a save cannot rebind it")


class _Lifecycle:
    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class MemoryConversationStore(_Lifecycle):
    """Conversations in memory: the library default, gone when the process ends.

    Bounded like every map of a long-running bridge: past `max_conversations` the least recently used one is
    forgotten (a question on it later starts it afresh). Use a durable store to keep them all.

    Args:
        artifacts: where artifacts go; a `MemoryArtifactStore` with its default size bound if not given.
        max_conversations: conversations kept at most.
    """

    def __init__(self, *, artifacts: ArtifactStore | None = None, max_conversations: int = 10_000) -> None:
        self._conversations: BoundedMap[str, Conversation] = BoundedMap(max_conversations)
        self._artifacts: ArtifactStore = artifacts if artifacts is not None else MemoryArtifactStore()
        self._last_stamp_us: int | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryConversationStore conversations={len(self._conversations)} {state}>"

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    async def create(self, conversation: Conversation) -> None:
        self._check_open()
        if self._conversations.get(conversation.id) is not None:
            raise _duplicate(conversation.id)
        self._write(conversation)

    async def get(self, conversation_id: str) -> Conversation | None:
        self._check_open()
        stored = self._conversations.get(conversation_id)
        return None if stored is None else stored.model_copy(deep=True)

    async def save(self, conversation: Conversation) -> None:
        self._check_open()
        stored = self._conversations.get(conversation.id)
        if stored is not None and not stored.is_bound_to(conversation.identity):
            raise _rebound(conversation.id)
        self._write(conversation)

    async def list(self, *, external_id: str | None = None, limit: int = 50) -> builtins.list[Conversation]:
        self._check_open()
        _check_limit(limit)
        found = [
            conversation
            for conversation in self._conversations.values()
            if external_id is None or conversation.identity.external_id == external_id
        ]
        found.sort(key=lambda conversation: (conversation.updated_at, conversation.id), reverse=True)
        return [conversation.model_copy(deep=True) for conversation in found[:limit]]

    async def delete(self, conversation_id: str) -> bool:
        self._check_open()
        return self._conversations.pop(conversation_id) is not None

    def _write(self, conversation: Conversation) -> None:
        self._last_stamp_us = _next_stamp_us(self._last_stamp_us)
        stamp = _from_us(self._last_stamp_us)
        self._conversations.put(conversation.id, conversation.model_copy(deep=True, update={"updated_at": stamp}))
        conversation.updated_at = stamp
