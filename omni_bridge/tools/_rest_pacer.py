"""`RestPacer`: the bridge keeps its own Omni REST calls under a budget per API key, instead of finding it by 429s.

Omni allows 60 REST requests per minute per API key (every `/api/*` path; support can raise it) and answers 429
beyond. How Omni counts the minute is not documented, so the pacer keeps the strictest reading: never more than
the budget in any 60 seconds (a sliding log of the times calls were let through). The first calls of a burst go
at once; the rest wait their turn, in order. A call whose turn is further away than it may wait (its timeout)
fails at once with `RestBudgetBusy`, a retryable error that nothing was sent, rather than hanging.

One pacer per API key per process: every `RestTransport` of a key looks it up in one registry by a keyed hash
(HMAC with a per-process salt) of the instance and the key, so two clients of one key share one budget and the
key itself is never held here. The instance is part of the name because the sandbox's org key is the same
everywhere: two sandboxes on two ports are two budgets, as two Omni instances would be. A pacer that let no call
through for a whole window is in the state of a new one, so the registry drops it (bounded by the keys in use).

The default budget (`default_budget`): Omni's documented 60 per minute for any host, but a generous one
(`LOOPBACK_REQUESTS_PER_MINUTE`) for a loopback host, which is the embedded sandbox, a sandbox served locally or
a test double, none of which limits anything. A budget asked for explicitly (`OMNI_REST_REQUESTS_PER_MINUTE`)
applies to any host. MCP calls are not paced: Omni's limit covers `/api/*` only.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

import httpx2
from pydantic import SecretStr

from omni_bridge.config import Settings
from omni_bridge.exceptions import ErrorType, OmniError

__all__ = [
    "LOOPBACK_REQUESTS_PER_MINUTE",
    "OMNI_REQUESTS_PER_MINUTE",
    "RestBudgetBusy",
    "RestPacer",
    "configured_budget",
    "default_budget",
    "pacer_for",
    "pacer_name",
]

OMNI_REQUESTS_PER_MINUTE = 60.0
"""Omni's documented limit per API key."""
LOOPBACK_REQUESTS_PER_MINUTE = 60_000.0
"""The budget of a loopback target unless one is set: the sandbox limits nothing, and tests and benchmarks make
thousands of calls to it, yet its calls still go through a pacer (1,000 a second, at most 60,000 times kept)."""
_WINDOW = 60.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RestBudgetBusy(OmniError):
    """The API key's budget of REST calls is spent for longer than the call may wait; nothing was sent.

    Attributes:
        retry_after: seconds until the call's turn would have come.
    """

    error_type: ClassVar[ErrorType] = "rate_limited"
    retryable = True

    def __init__(self, retry_after: float, *, per_minute: float, max_wait: float) -> None:
        self.retry_after = retry_after
        self.per_minute = per_minute
        self.max_wait = max_wait
        super().__init__(
            f"the bridge's budget of {per_minute:g} Omni REST calls per minute for this API key is spent: "
            f"this call's turn is {retry_after:.1f}s away, longer than it may wait ({max_wait:g}s); "
            "nothing was sent, ask again in a moment"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_busy, (self.retry_after, self.per_minute, self.max_wait))


def _rebuild_busy(retry_after: float, per_minute: float, max_wait: float) -> RestBudgetBusy:
    return RestBudgetBusy(retry_after, per_minute=per_minute, max_wait=max_wait)


class RestPacer:
    """At most `per_minute` calls in any minute; calls beyond wait their turn in arrival order.

    Each call takes a turn at once (no lock is held while waiting, so it is fair and cheap): the earliest moment
    at which it is not more than the budget in the window. Thread safe; usable from any event loop.

    Args:
        per_minute: the budget (a fraction works: 0.5 is one call every two minutes).
        clock: monotonic seconds (tests pass a virtual clock).
        sleep: how to wait for a turn (tests pass one that moves their virtual clock).
    """

    def __init__(self, per_minute: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if not math.isfinite(per_minute) or per_minute <= 0:
            raise ValueError("per_minute must be a positive number")
        self._clock = clock
        self._sleep = sleep
        self._turns: collections.deque[float] = collections.deque()
        """The moments calls were (or will be) let through, oldest first, within the last window."""
        self._lock = threading.Lock()
        self.granted = 0
        """How many calls this pacer has let through (or given a turn to)."""
        self._set_budget(per_minute)

    def __repr__(self) -> str:
        return f"<RestPacer {self._per_minute:g}/min granted={self.granted}>"

    @property
    def per_minute(self) -> float:
        """The budget in calls per minute."""
        return self._per_minute

    def _set_budget(self, per_minute: float) -> None:
        # A budget below one call a minute stretches the window instead: one call per 60/per_minute seconds.
        self._per_minute = per_minute
        self._calls = max(1, math.floor(per_minute))
        self._window = _WINDOW * self._calls / per_minute

    def lower_to(self, per_minute: float) -> None:
        """Use `per_minute` if it is below the current budget (the most careful client of a key wins)."""
        with self._lock:
            if per_minute < self._per_minute:
                self._set_budget(per_minute)

    def wait(self) -> float:
        """Seconds a call made now would wait for its turn (0 when it may go at once)."""
        with self._lock:
            now = self._clock()
            return max(0.0, self._next_turn(now) - now)

    def idle(self) -> bool:
        """Whether no call was let through within the last window (then this pacer is as good as new)."""
        with self._lock:
            self._forget(self._clock())
            return not self._turns

    async def acquire(self, *, max_wait: float) -> float:
        """Wait for this call's turn and return its moment (on the pacer's clock).

        Raises:
            RestBudgetBusy: the turn is more than `max_wait` seconds away; no turn was taken.
        """
        with self._lock:
            now = self._clock()
            turn = self._next_turn(now)
            if turn - now > max_wait:
                raise RestBudgetBusy(turn - now, per_minute=self._per_minute, max_wait=max_wait)
            self._turns.append(turn)
            self.granted += 1
        # A cancelled wait keeps its turn: the budget errs on the safe side.
        while (left := turn - self._clock()) > 0:
            await self._sleep(left)
        return turn

    def _forget(self, now: float) -> None:
        while self._turns and self._turns[0] <= now - self._window:
            self._turns.popleft()

    def _next_turn(self, now: float) -> float:
        """The earliest moment with fewer than `calls` turns in the window before it (turns are kept sorted)."""
        self._forget(now)
        if len(self._turns) < self._calls:
            return now
        return max(now, self._turns[-self._calls] + self._window)


def default_budget(base_url: str) -> float:
    """The budget of a target when none is configured: Omni's 60 per minute, or a generous one on loopback."""
    host = httpx2.URL(base_url).host.strip("[]").lower()
    if host == "localhost":
        return LOOPBACK_REQUESTS_PER_MINUTE
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return LOOPBACK_REQUESTS_PER_MINUTE if loopback else OMNI_REQUESTS_PER_MINUTE


def configured_budget(settings: Settings) -> float | None:
    """`OMNI_REST_REQUESTS_PER_MINUTE` when it was set (environment, `.env` or an override), else `None`, which
    lets the target decide (`default_budget`)."""
    if "omni_rest_requests_per_minute" in settings.model_fields_set:
        return settings.omni_rest_requests_per_minute
    return None


_SALT = secrets.token_bytes(32)
_PACERS: dict[str, RestPacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_name(base_url: str, api_key: SecretStr) -> str:
    """The registry's name for a key's pacer: a salted hash, so the key is not kept and cannot be matched."""
    material = f"{base_url}\n{api_key.get_secret_value()}".encode()
    return hmac.new(_SALT, material, hashlib.sha256).hexdigest()


def pacer_for(name: str, per_minute: float) -> RestPacer:
    """The process's one pacer for the key named `name` (`pacer_name`), made with `per_minute` if new.

    A pacer already there keeps its history and takes the lower of its budget and `per_minute`. Pacers idle for
    a whole window are dropped when another is made, so the registry holds only the keys in recent use.
    """
    with _PACERS_LOCK:
        pacer = _PACERS.get(name)
        if pacer is None:
            for idle in [other for other, known in _PACERS.items() if known.idle()]:
                del _PACERS[idle]
            pacer = _PACERS[name] = RestPacer(per_minute)
            return pacer
    pacer.lower_to(per_minute)
    return pacer
