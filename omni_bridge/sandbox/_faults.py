"""Fault knobs and counters: what tests and demos turn on, and what they read back.

Faults are plain mutable settings read on every request, so a test can change them while the sandbox runs
(from Python, or with `POST /sandbox/faults`). Counters are what the bridge's tests assert on: how many MCP
sessions were opened for whom, how many lookups reached the server, which tool calls were cancelled, how
many tool calls ran at the same time, and the arguments the latest tool calls arrived with (so a test can show
what a client let through to "Omni").
"""

from __future__ import annotations

import copy
import random
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["Faults", "Stats"]


@dataclass
class Faults:
    """Misbehaviour to inject. All off by default."""

    latency_ms: int = 0
    """Added before every MCP and REST request is handled."""
    error_rate: float = 0.0
    """Fraction (0..1) of MCP and REST requests answered with `error_status` instead."""
    error_status: int = 503
    """429 or a 5xx; 429 answers carry `Retry-After: 1`."""
    slow_tool_seconds: float = 0.0
    """Extra time a tool call takes (before it answers)."""
    slow_tool_name: str | None = None
    """Which tool is slow; `None` means every tool."""
    rate_limit_per_minute: int | None = None
    """Like Omni's per-key limit (60/min by default there): over it, 429 with `Retry-After`."""
    scim_available: bool = True
    """False: SCIM answers 404, as on instances without it (the bridge then falls back to /api/v0/users/embed)."""
    scim_ignores_filter: bool = False
    """True: SCIM ignores `filter=` and lists everyone, as some instances do (the bridge must page)."""
    query_run_status: int | None = None
    """Answer `POST /api/v1/query/run` with this 4xx/5xx status (e.g. 408, 500): a re-run of a query that fails."""
    seed: int = 1
    _random: random.Random = field(default_factory=lambda: random.Random(1), repr=False, compare=False)

    def update(self, **changes: Any) -> None:
        """Set knobs by name; unknown names raise `ValueError` naming them."""
        unknown = sorted(set(changes) - {f for f in self.public_fields()})
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(self.public_fields())}")
        candidate = replace(self, **changes)
        candidate.validate()  # a refused change leaves every knob as it was
        for name in changes:
            setattr(self, name, getattr(candidate, name))
        if "seed" in changes:
            self._random = random.Random(self.seed)

    def validate(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if self.error_status != 429 and not 500 <= self.error_status <= 599:
            raise ValueError("error_status must be 429 or a 5xx status")
        if self.latency_ms < 0 or self.slow_tool_seconds < 0:
            raise ValueError("latency_ms and slow_tool_seconds must not be negative")
        if self.query_run_status is not None and not 400 <= self.query_run_status <= 599:
            raise ValueError("query_run_status must be a 4xx or 5xx status (or null)")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1 (or null for no limit)")

    def should_fail(self) -> bool:
        return self.error_rate > 0 and self._random.random() < self.error_rate

    @classmethod
    def public_fields(cls) -> list[str]:
        return [name for name in cls.__dataclass_fields__ if not name.startswith("_")]

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class Stats:
    """Thread-safe counters. Users appear by id (sandbox ids are not secrets)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.sessions_opened: Counter[str] = Counter()
        self.tool_calls: Counter[tuple[str, str]] = Counter()
        self.cancelled_tool_calls: list[tuple[str, str]] = []
        self.tool_arguments: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=1000)
        """`(user id, tool, arguments)` of the latest tool calls, as they arrived (before validation)."""
        self.in_flight = 0
        self.max_in_flight = 0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def session_opened(self, user_id: str) -> None:
        with self._lock:
            self.sessions_opened[user_id] += 1
            self.counts["mcp.sessions"] += 1

    def arguments_received(self, user_id: str, tool: str, arguments: dict[str, Any]) -> None:
        with self._lock:
            self.tool_arguments.append((user_id, tool, copy.deepcopy(arguments)))

    def tool_started(self, user_id: str, tool: str) -> None:
        with self._lock:
            self.tool_calls[(user_id, tool)] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def tool_ended(self, user_id: str, tool: str, *, cancelled: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            if cancelled:
                self.cancelled_tool_calls.append((user_id, tool))

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.sessions_opened.clear()
            self.tool_calls.clear()
            self.cancelled_tool_calls.clear()
            self.tool_arguments.clear()
            self.max_in_flight = self.in_flight

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "sessionsOpened": dict(self.sessions_opened),
                "toolCalls": [{"userId": u, "tool": t, "count": n} for (u, t), n in self.tool_calls.items()],
                "cancelledToolCalls": [{"userId": u, "tool": t} for u, t in self.cancelled_tool_calls],
                "inFlight": self.in_flight,
                "maxInFlight": self.max_in_flight,
            }
