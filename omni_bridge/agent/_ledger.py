"""`RecentUsageLedger`: the usage ledger of a long-running bridge, kept to a bounded window.

The plain `UsageLedger` keeps every turn of every conversation for the life of the process. This one keeps the
most recently used `max_conversations` conversations and, of each, the last `max_turns` turns; turn numbers and
totals still count every turn recorded while the conversation was in the window. The durable total of a
conversation is its stored `usage`, not this ledger.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from omni_bridge.agent.events import ApiUsage, TurnUsage, Usage, UsageLedger

__all__ = ["RecentUsageLedger"]


@dataclass(slots=True)
class _Tally:
    turns: list[TurnUsage] = field(default_factory=list)
    counted: int = 0
    total: Usage = field(default_factory=Usage)


class RecentUsageLedger(UsageLedger):
    """A `UsageLedger` bounded to the most recently used conversations, and to their last turns."""

    def __init__(self, *, max_conversations: int = 1000, max_turns: int = 1000) -> None:
        if max_conversations < 1 or max_turns < 1:
            raise ValueError("max_conversations and max_turns must be at least 1")
        super().__init__()
        self.max_conversations = max_conversations
        self.max_turns = max_turns
        self._tallies: OrderedDict[str, _Tally] = OrderedDict()

    def __repr__(self) -> str:
        turns = sum(len(tally.turns) for tally in self._tallies.values())
        return f"<RecentUsageLedger conversations={len(self._tallies)} turns={turns} max={self.max_conversations}>"

    def __len__(self) -> int:
        return len(self._tallies)

    def add(self, conversation_id: str, usage: Usage | ApiUsage) -> TurnUsage:
        counted = usage if isinstance(usage, Usage) else Usage.from_api(usage)
        tally = self._tallies.get(conversation_id)
        if tally is None:
            tally = self._tallies[conversation_id] = _Tally()
        self._tallies.move_to_end(conversation_id)
        tally.counted += 1
        turn = TurnUsage(turn=tally.counted, usage=counted)
        tally.turns.append(turn)
        del tally.turns[: -self.max_turns]
        tally.total = tally.total + counted
        while len(self._tallies) > self.max_conversations:
            self._tallies.popitem(last=False)
        return turn

    def turns(self, conversation_id: str) -> list[TurnUsage]:
        tally = self._tallies.get(conversation_id)
        return list(tally.turns) if tally is not None else []

    def total(self, conversation_id: str) -> Usage:
        tally = self._tallies.get(conversation_id)
        return tally.total if tally is not None else Usage()
