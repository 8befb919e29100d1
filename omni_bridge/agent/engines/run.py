"""`Run`: one question being answered, as every engine receives it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.events import UsageLedger
from omni_bridge.tools import Toolset

__all__ = ["Run"]


@dataclass
class Run:
    """One question being answered: what an engine needs, and where it reports."""

    conversation: Conversation
    question: str
    response_id: str
    toolset: Toolset | None = None
    save: Callable[[Conversation], Awaitable[None]] | None = None
    """Persists the conversation; called after each turn so a crash loses at most one turn."""
    ledger: UsageLedger = field(default_factory=UsageLedger)

    def stamp(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation.id, "response_id": self.response_id}

    async def checkpoint(self) -> None:
        if self.save is not None:
            await self.save(self.conversation)
