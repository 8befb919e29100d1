"""`KeyedLocks`: one lock per key (a conversation), kept only while someone holds it or waits for it.

A long-running server answers for an unbounded number of conversations; a plain `dict[str, Lock]` would keep
every lock ever made. Here an entry counts its holder and waiters and is dropped when the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["KeyedLocks"]


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """The holder and the waiters of `lock`."""


class KeyedLocks:
    """Mutual exclusion per key; `len()` is the number of keys someone holds or waits for."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<KeyedLocks keys={len(self._entries)}>"

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of `key` for the body; others asking for the same key wait their turn."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
