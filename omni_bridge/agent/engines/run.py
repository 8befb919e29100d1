"""`Run`: one question being answered, as every engine receives it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.events import UsageLedger
from omni_bridge.tools import Toolset

__all__ = ["JobOptions", "Run"]


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What an AI job's creator asked for beyond the prompt, passed on to Omni by the `omni` engine.

    `attachments` are Omni's `{data: <base64>, mimeType, name?}` objects, sent as they came; the `claude`
    engine has no use for either field (it works on the model itself, and reads no attachments).
    """

    branch_id: str | None = None
    attachments: tuple[dict[str, Any], ...] = field(default=(), repr=False)


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
    job_options: JobOptions | None = None
    """For a run that answers an AI job: its branch and attachments."""

    def stamp(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation.id, "response_id": self.response_id}

    async def checkpoint(self) -> None:
        if self.save is not None:
            await self.save(self.conversation)
