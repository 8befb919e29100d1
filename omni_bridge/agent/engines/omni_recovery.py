"""What the `omni` engine does when Omni has lost a conversation, or denies a job, instead of failing vaguely.

**A lost conversation.** The bridge keeps its conversations (in `BRIDGE_DATA_DIR` or a database) longer than
Omni may keep the Omni conversation each one continues: a real Omni can purge it, an embedded sandbox without a
data directory forgets it on restart. Omni then answers the next job's create with `404 Conversation … not
found`. Rather than fail the question, the engine starts a new Omni conversation whose first prompt carries the
last few question/answer pairs of the bridge's own transcript (within a size budget, newest kept first), binds
the bridge conversation to the new Omni conversation, and says so in the answer: a short notice as a text part,
the same as a `custom` part (`omni_conversation_restarted`) for code, and a `Progress` event while it runs.
The current question is the prompt's last paragraph, after the carried context.

**A denied job.** Omni denies AI work over the organization's AI credit limit: its terminal webhook is
`job.denied` with a `reason`; a polled denied job is FAILED (states are unchanged), which the bridge tells from
a failure by the error's `reason` or code (`JobError.denial_reason`). An Omni that refuses the create instead
(402, 403 or 429 naming credits) is a denial too. Either way the run ends with the typed error `job_denied`
and Omni's reason, never a generic failure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from omni_bridge.agent.events import ContentPart, CustomPart, TextPart
from omni_bridge.exceptions import OmniHTTPError
from omni_bridge.tools import JobStatus

__all__ = [
    "CONTEXT_BUDGET_CHARS",
    "CONTEXT_TURNS",
    "REBOUND_PART",
    "Rebound",
    "denial_of_refusal",
    "denial_of_status",
    "denied_message",
    "is_lost_conversation",
]

CONTEXT_TURNS = 3
"""Question/answer pairs carried into a new Omni conversation at most."""
CONTEXT_BUDGET_CHARS = 4000
"""Characters of carried context at most (each answer is also cut to a quarter of it)."""
REBOUND_PART = "omni_conversation_restarted"
"""The name of the `custom` part that says a new Omni conversation was started."""
_CONTEXT_HEADER = "Earlier in this conversation (carried over by the bridge; Omni no longer had it):"
_CREDIT = re.compile(r"credit", re.IGNORECASE)


def is_lost_conversation(exc: OmniHTTPError) -> bool:
    """Whether Omni refused a job's create because it does not know the conversation it continues."""
    return exc.status == 404 and "conversation" in (exc.detail or "").lower()


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


def _pairs(messages: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(question, answer) pairs of a transcript, oldest first; a question left without an answer is dropped."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for message in messages:
        text = _text(message).strip()
        if not text:
            continue
        if message.get("role") == "user":
            question = text
        elif message.get("role") == "assistant" and question is not None:
            pairs.append((question, text))
            question = None
    return pairs


def _squeeze(text: str, limit: int) -> str:
    flat = re.sub(r"\n\s*\n+", "\n", text.strip())  # no blank lines: the question stays the last paragraph
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class Rebound:
    """A new Omni conversation started for a lost one: the prompt that opens it, and what to tell the user."""

    prompt: str
    lost_conversation_id: str
    carried: int
    """Question/answer pairs carried over."""

    @classmethod
    def of(
        cls,
        messages: Sequence[dict[str, Any]],
        question: str,
        *,
        lost_conversation_id: str,
        turns: int = CONTEXT_TURNS,
        budget: int = CONTEXT_BUDGET_CHARS,
    ) -> Rebound:
        """The prompt for `question` with the last `turns` pairs of `messages` (the transcript before it)."""
        blocks: list[str] = []
        used = len(_CONTEXT_HEADER)
        for asked, answered in reversed(_pairs(messages)[-turns:] if turns > 0 else []):
            block = f"Q: {_squeeze(asked, budget // 4)}\nA: {_squeeze(answered, budget // 4)}"
            if used + len(block) + 1 > budget:
                break
            blocks.insert(0, block)
            used += len(block) + 1
        if not blocks:
            return cls(prompt=question, lost_conversation_id=lost_conversation_id, carried=0)
        prompt = "\n".join([_CONTEXT_HEADER, *blocks]) + "\n\n" + question
        return cls(prompt=prompt, lost_conversation_id=lost_conversation_id, carried=len(blocks))

    @property
    def notice(self) -> str:
        """One line for the user."""
        carried = (
            f"the last {self.carried} question(s) and answer(s) were carried over"
            if self.carried
            else "no earlier questions could be carried over"
        )
        return f"Omni no longer had this conversation, so a new one was started; {carried}."

    def parts(self, conversation_id: str) -> list[ContentPart]:
        """The notice as a text part (for people) and a `custom` part (for code)."""
        data: dict[str, JsonValue] = {
            "message": self.notice,
            "lostOmniConversationId": self.lost_conversation_id,
            "omniConversationId": conversation_id,
            "carriedTurns": self.carried,
        }
        return [TextPart(text=f"_{self.notice}_\n\n"), CustomPart(name=REBOUND_PART, data=data)]


def denial_of_status(status: JobStatus) -> str | None:
    """Omni's reason when a FAILED job was denied (e.g. over the AI credit limit), else `None`."""
    return status.error.denial_reason if status.error is not None else None


def denial_of_refusal(exc: OmniHTTPError) -> str | None:
    """Omni's reason when it refused a job's create over credits (402, 403 or 429 naming them), else `None`."""
    if exc.status in (402, 403, 429) and _CREDIT.search(exc.detail or ""):
        return exc.detail
    return None


def denied_message(reason: str) -> str:
    """What the user is told when Omni denied the question."""
    return f"Omni denied the question: {reason}"
