"""The token budget of text for the model: how tokens are estimated, and how text is cut to fit.

Tokens are estimated as characters / `CHARS_PER_TOKEN` (4): cheap, needs no tokenizer, and close for the CSV,
numbers and English that tool results hold. The budget is enforced on characters: text cut to a budget is never
longer than `budget_tokens * CHARS_PER_TOKEN`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_BUDGET_TOKENS",
    "FENCE_CLOSE",
    "FENCE_OPEN",
    "MIN_BUDGET_TOKENS",
    "cut_to_fit",
    "estimate_tokens",
    "take",
]

CHARS_PER_TOKEN = 4
"""Characters per token in the budget's estimate (tokens = ceil(chars / 4))."""
DEFAULT_BUDGET_TOKENS = 4000
MIN_BUDGET_TOKENS = 100
"""Below this not even the note naming the result id is sure to fit."""

FENCE_OPEN = "```csv\n"
"""How a table starts in text for the model (the CSV header line follows)."""
FENCE_CLOSE = "```"
_CUT_MARK = "\n[…cut to fit the budget]"


def estimate_tokens(text: str) -> int:
    """The budget's token estimate for `text`: characters / `CHARS_PER_TOKEN`, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def take(units: Iterator[str], allowance: int) -> tuple[list[str], bool]:
    """The first units whose total length fits `allowance`, and whether every unit fitted."""
    taken: list[str] = []
    used = 0
    for unit in units:
        if used + len(unit) > allowance:
            return taken, False
        taken.append(unit)
        used += len(unit)
    return taken, True


def cut_to_fit(text: str, limit: int) -> str:
    """`text` if it fits `limit` characters, else its start, cut at a line boundary where one is near, marked."""
    if len(text) <= limit:
        return text
    room = max(limit - len(_CUT_MARK), 0)
    newline = text.rfind("\n", 0, room + 1)
    end = newline if newline >= room // 2 else room
    return (text[:end] + _CUT_MARK)[:limit]
