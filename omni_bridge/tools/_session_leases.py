"""`SessionLeases`: the pool's bookkeeping of open sessions: single-flight opens, an LRU bound, idle expiry.

- Each session opens once even when many calls race for it (single flight): the first caller starts the open,
  the others wait on it, and one caller giving up does not cancel it for the rest.
- The number of sessions is bounded: the least recently used idle session is closed to make room; when every
  session is busy, an open waits for a free slot.
- A session is leased for each call (`lease` counts it in flight, `release` gives it back), so a session taken
  out of the pool (`retire`) is closed only once the calls still on it have returned.

The state changes only in the event loop's thread, between awaits, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from omni_bridge.tools._session_key import SessionKey
from omni_bridge.tools._session_supervisor import PooledSession, SessionOptions, supervise, wait_closed

if TYPE_CHECKING:  # `mcp` is imported when a session opens, not to start: it takes most of a second
    from mcp.client.session import MessageHandlerFnT

__all__ = ["SessionLeases"]

log = logging.getLogger("omni_bridge.pool")


class SessionLeases:
    """The open sessions of one pool, in least recently used order, and the opens under way."""

    def __init__(
        self,
        options: SessionOptions,
        *,
        max_sessions: int,
        on_message: Callable[[SessionKey], MessageHandlerFnT],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self._options = options
        self._on_message = on_message
        self._clock = clock
        self._sessions: OrderedDict[SessionKey, PooledSession] = OrderedDict()
        self._opening: dict[SessionKey, asyncio.Future[None]] = {}
        self._reserved = 0  # opens that have a slot but are not in `_sessions` yet
        self._room = asyncio.Event()  # set whenever a slot may have been freed
        self._closing: set[asyncio.Future[None]] = set()
        self._accepting = False  # leases are given out between `start()` and `aclose()` only
        self.counts = {"opened": 0, "expired": 0, "closed": 0}
        """Sessions opened, found expired (`Session not found`) and closed, since the pool opened."""

    @property
    def open(self) -> int:
        return len(self._sessions)

    @property
    def opening(self) -> int:
        return len(self._opening)

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self._sessions.values())

    def start(self) -> None:
        """Give out leases from now on (until `aclose`)."""
        self._accepting = True

    async def lease(self, key: SessionKey) -> PooledSession:
        """An open session for `key` with one more call counted on it (give it back with `release`).

        Raises:
            RuntimeError: the pool is not open (not entered yet, or closed).
        """
        if not self._accepting:
            raise RuntimeError("the SessionPool is not open; use `async with SessionPool(...)`")
        while True:
            session = self._sessions.get(key)
            if session is not None and session.alive:
                self._sessions.move_to_end(key)
                session.in_flight += 1
                session.last_used = self._clock()
                return session
            if session is not None:
                self.retire(session)
            opening = self._opening.get(key)
            if opening is None:
                opening = asyncio.ensure_future(self._open(key))
                self._opening[key] = opening
                opening.add_done_callback(functools.partial(self._opened, key))
            # Shielded: one caller giving up must not cancel an open that other callers wait for.
            await asyncio.shield(opening)

    def release(self, session: PooledSession) -> None:
        """One call on `session` has returned; a retired session with no call left is closed."""
        session.in_flight -= 1
        session.last_used = self._clock()
        if session.in_flight == 0:
            self._room.set()
            if session.retired:
                self._close(session)

    def expired(self, session: PooledSession) -> None:
        """Omni forgot `session`: counted once (however many calls found out), then retired."""
        if self._sessions.get(session.key) is session:
            self.counts["expired"] += 1
        self.retire(session)

    def retire(self, session: PooledSession) -> None:
        """Take `session` out of the pool; close it now, or when the calls still on it have returned.

        Calls in flight on an expired session get `Session not found` themselves and retry on the new
        session; closing under them would turn that safe retry into a connection error.
        """
        session.retired = True
        self._forget(session)
        if session.in_flight == 0:
            self._close(session)

    def retire_key(self, key: SessionKey) -> bool:
        """Retire `key`'s session, if one is open (see `retire`); whether there was one."""
        session = self._sessions.get(key)
        if session is not None:
            self.retire(session)
        return session is not None

    def expire_idle(self, idle_seconds: float) -> int:
        """Close sessions unused for `idle_seconds`; returns how many."""
        now = self._clock()
        expired = [s for s in self._sessions.values() if s.in_flight == 0 and now - s.last_used >= idle_seconds]
        for session in expired:
            self.retire(session)
        return len(expired)

    async def aclose(self) -> None:
        """Stop leasing, cancel the opens under way, close every session and wait for them to close."""
        self._accepting = False
        for future in list(self._opening.values()):
            future.cancel()
        for session in list(self._sessions.values()):
            self._close(session)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _opened(self, key: SessionKey, opening: asyncio.Future[None]) -> None:
        self._opening.pop(key, None)
        if not opening.cancelled():
            opening.exception()  # every waiter re-raises it; this marks it seen even when all gave up

    async def _open(self, key: SessionKey) -> None:
        await self._make_room()
        try:
            session = PooledSession(key=key, last_used=self._clock())
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            supervisor = supervise(session, ready, self._options, on_message=self._on_message(key), on_end=self._forget)
            session.task = asyncio.create_task(supervisor, name=f"omni-mcp-{key.digest}")
            try:
                await ready
            except BaseException:
                session.request_stop()
                raise
        finally:
            self._reserved -= 1
        self.counts["opened"] += 1
        self._sessions[key] = session
        log.debug("opened MCP session %s (%d open)", key.digest, len(self._sessions))

    async def _make_room(self) -> None:
        """Reserve a slot for one more session, closing least recently used idle sessions to make one."""
        while len(self._sessions) + self._reserved >= self.max_sessions:
            idle = next((s for s in self._sessions.values() if s.in_flight == 0), None)
            if idle is not None:
                log.debug("pool full: closing least recently used session %s", idle.key.digest)
                self.retire(idle)
                continue
            self._room.clear()  # no await between the check and here, so no wake-up can be missed
            await self._room.wait()
        self._reserved += 1

    def _forget(self, session: PooledSession) -> None:
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
            self.counts["closed"] += 1
            self._room.set()

    def _close(self, session: PooledSession) -> None:
        session.request_stop()
        task = session.task
        if task is not None and not task.done():
            self._track(asyncio.ensure_future(wait_closed(task)))
        self._forget(session)

    def _track(self, task: asyncio.Future[None]) -> None:
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
