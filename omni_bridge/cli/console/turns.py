"""A stored conversation read back as turns a person recognises: what was asked, what was answered.

The store keeps the Messages-API transcript (tool calls, tool results, text blocks); `/history`, the list of
`/conversations` and a resumed conversation show only its text, question and answer by turn. Nothing here
talks to a store: the session hands over `Conversation` objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.text import Text

from omni_bridge.agent import Conversation
from omni_bridge.cli.console.markdown import answer_markdown
from omni_bridge.cli.console.render import truncate

__all__ = ["Turn", "conversation_line", "turns", "turns_renderable"]

RESUMED_TURNS = 2
"""Exchanges (a question and its answer) shown when a conversation is resumed: enough to see where it was."""


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    if not isinstance(content, list):
        return ""
    texts = [block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text"]
    return "\n\n".join(text.strip() for text in texts if text.strip())


def turns(conversation: Conversation) -> list[Turn]:
    """The questions and answers of `conversation`, oldest first; an answer split by tool calls is one turn."""
    out: list[Turn] = []
    for message in conversation.messages:
        role = message.get("role")
        text = _text_of(message)
        if role not in ("user", "assistant") or not text:
            continue  # tool results, tool-only replies
        if out and out[-1].role == role:
            out[-1] = Turn(out[-1].role, f"{out[-1].text}\n\n{text}")
        else:
            out.append(Turn(role, text))
    return out


def turns_renderable(shown: list[Turn], *, user: str, styled: bool) -> RenderableType:
    """Turns as the console prints them: `alice> question`, then the answer (Markdown on a terminal)."""
    parts: list[RenderableType] = []
    for index, turn in enumerate(shown):
        if turn.role == "user":
            if index:
                parts.append(Text(""))
            parts.append(Text.assemble((f"{user}> ", "bold cyan" if styled else ""), turn.text))
        else:
            parts.append(answer_markdown(turn.text) if styled else Text(turn.text))
    return Group(*parts)


def conversation_line(number: int, conversation: Conversation, *, current: bool) -> Text:
    """One line of `/conversations`: number, id, when, engine, turns and the first question."""
    asked = [turn for turn in turns(conversation) if turn.role == "user"]
    first = truncate(conversation.title or (asked[0].text.replace("\n", " ") if asked else "(no question yet)"), 50)
    when = conversation.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
    line = Text(f"{number:>3}. ")
    line.append(conversation.id, style="bold" if current else "")
    line.append(f"  {when} · {conversation.engine} · {len(asked)} question{'s' if len(asked) != 1 else ''} · ")
    line.append(f"“{first}”")
    if current:
        line.append("  (this one)", style="dim")
    return line
