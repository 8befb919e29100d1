"""`BoundedMap`: a dict for long-lived caches, bounded by size (least recently used first out) and by age.

A server answers for an unbounded number of users, conversations and sessions; every map keyed by one of them
must forget. This is the one helper for it (identity caches, tool lists, the memory conversation store): an
`OrderedDict` in order of last use, each entry with its own expiry. An expired entry is never returned; it
leaves at the next read of its key, at `expire()` (which an owner calls periodically, so memory is given back
while nobody asks), or when the map is full and it is the least recently used.

Not thread-safe: each owner uses its map from one event loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["BoundedMap"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """At most `max_entries` entries; each lives until its `ttl` (given to `put`) has passed.

    Args:
        max_entries: entries kept at most; past it the least recently used leaves.
        ttl: the default lifetime of an entry in seconds (`None`: until evicted).
        clock: monotonic seconds (tests pass a fake one to step over a TTL).
    """

    def __init__(
        self, max_entries: int, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        """key -> (expires at, value), least recently used first."""

    def __repr__(self) -> str:
        return f"<BoundedMap entries={len(self._items)} max_entries={self.max_entries}>"

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The live value of `key` (now the most recently used), or `None`; an expired entry is dropped."""
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Keep `value` under `key` for `ttl` seconds (default: the map's), evicting the least recently used."""
        lifetime = ttl if ttl is not None else self._ttl
        expires = math.inf if lifetime is None else self._clock() + lifetime
        self._items[key] = (expires, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Remove `key`; its value (expired or not), or `None`."""
        item = self._items.pop(key, None)
        return None if item is None else item[1]

    def expire(self) -> int:
        """Drop every expired entry; returns how many."""
        now = self._clock()
        expired = [key for key, (expires, _) in self._items.items() if expires <= now]
        for key in expired:
            del self._items[key]
        return len(expired)

    def values(self) -> Iterator[V]:
        """The live values, least recently used first (reading them does not count as use)."""
        now = self._clock()
        return (value for expires, value in list(self._items.values()) if expires > now)

    def clear(self) -> None:
        self._items.clear()
