"""Deterministic token counts and a prompt-cache simulation, so an agent's caching can be measured offline.

Counts are about a quarter of the canonical JSON length of each piece of the prompt: not the real tokenizer,
but stable across runs and proportional to what is sent. The cache follows the API's documented rules
closely enough for an agent's cache markers to matter as they would against the real API:

- the prompt is read in the API's cache order: tools, then system blocks, then message content blocks;
- a `cache_control` marker on any of them is a breakpoint (a top-level `cache_control` marks the last block);
- each breakpoint writes its prefix to the cache; a later request reads the longest cached prefix that ends
  within 20 blocks before one of its breakpoints, and pays cache creation only for the rest up to its last
  breakpoint;
- prefixes shorter than `min_cacheable_tokens` are not cached (the real API's minimum is 1024 tokens or
  more, depending on the model; the fake's default of 0 keeps small test prompts cacheable).

Cache entries never expire; `clear()` empties the cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheAccount", "PromptCache", "count_tokens"]

LOOKBACK_BLOCKS = 20


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def count_tokens(value: Any) -> int:
    """About a quarter of the canonical JSON length of `value`, at least 1."""
    return max(1, math.ceil(len(canonical_json(value)) / 4))


@dataclass(frozen=True)
class CacheAccount:
    """How a request's input tokens split between uncached input, cache writes and cache reads."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_creation_1h_input_tokens: int


@dataclass(frozen=True)
class _Block:
    content: Any
    ttl: str | None
    """`None` when the block carries no `cache_control`, else its TTL (`"5m"` unless `"1h"`)."""


class PromptCache:
    """The fake's prompt cache: the prefixes earlier requests wrote, by hash.

    The prompt is read as blocks in cache order (tools, system blocks, message content blocks). Each block
    with `cache_control` (or the last block, for a top-level `cache_control`) is a breakpoint that writes
    its prefix. A request reads the longest cached prefix ending within 20 blocks before one of its
    breakpoints and reports the rest, up to its last breakpoint, as cache creation. Entries never expire.

    Args:
        min_cacheable_tokens: Prefixes shorter than this are not cached. The real API's minimum is 1024
            tokens or more depending on the model; 0 keeps small test prompts cacheable.
    """

    def __init__(self, min_cacheable_tokens: int = 0) -> None:
        if min_cacheable_tokens < 0:
            raise ValueError("min_cacheable_tokens must not be negative")
        self.min_cacheable_tokens = min_cacheable_tokens
        self._entries: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def account(self, body: dict[str, Any]) -> CacheAccount:
        """Split the input tokens of request `body` and record the prefixes it writes."""
        blocks = _blocks(body)
        ends: list[int] = []  # ends[i]: tokens of blocks[0..i]
        hashes: list[str] = []
        running = 0
        digest = hashlib.sha256(str(body.get("model")).encode()).digest()
        for block in blocks:
            running += count_tokens(block.content)
            ends.append(running)
            digest = hashlib.sha256(digest + canonical_json(block.content).encode()).digest()
            hashes.append(digest.hex())
        breakpoints = [i for i, b in enumerate(blocks) if b.ttl is not None and ends[i] >= self.min_cacheable_tokens]
        if not breakpoints:
            return CacheAccount(running, 0, 0, 0)

        with self._lock:
            hit = -1
            for point in breakpoints:
                for i in range(point, max(-1, point - LOOKBACK_BLOCKS), -1):
                    if hashes[i] in self._entries:
                        hit = max(hit, i)
                        break
            self._entries.update(hashes[point] for point in breakpoints)

        read = ends[hit] if hit >= 0 else 0
        created = created_1h = 0
        previous_end = 0
        for point in breakpoints:
            written = max(0, ends[point] - max(previous_end, read))
            created += written
            if blocks[point].ttl == "1h":
                created_1h += written
            previous_end = ends[point]
        return CacheAccount(running - ends[breakpoints[-1]], created, read, created_1h)


def _blocks(body: dict[str, Any]) -> list[_Block]:
    """The prompt as cacheable blocks in cache order, each stripped of its `cache_control`."""
    blocks: list[_Block] = []
    tools = body.get("tools")
    if isinstance(tools, list):
        blocks += [_block({"tool": tool}, tool) for tool in tools]
    system = body.get("system")
    if isinstance(system, str):
        blocks.append(_Block({"system": system}, None))
    elif isinstance(system, list):
        blocks += [_block({"system": block}, block) for block in system]
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):
            blocks += [_block({"role": role, "block": block}, block) for block in content]
        else:
            blocks.append(_Block({"role": role, "content": content}, None))
    top = body.get("cache_control")
    if isinstance(top, dict) and blocks:
        blocks[-1] = _Block(blocks[-1].content, _ttl(top))
    return blocks


def _block(wrapped: dict[str, Any], source: Any) -> _Block:
    if not isinstance(source, dict) or "cache_control" not in source:
        return _Block(wrapped, None)
    marker = source["cache_control"]
    stripped = {key: value for key, value in source.items() if key != "cache_control"}
    return _Block({key: stripped if value is source else value for key, value in wrapped.items()}, _ttl(marker))


def _ttl(marker: Any) -> str:
    return "1h" if isinstance(marker, dict) and marker.get("ttl") == "1h" else "5m"
