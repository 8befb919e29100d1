"""`Retention`: the service deletes what is older than `BRIDGE_RETENTION_DAYS`, once at start and then hourly.

Without it the store only grows (a deployment measured 157 MB for 12.8k threads). Each pass is the store's
`prune`: threads last updated before the cutoff, with their messages, responses, events and conversation
(never a thread whose response is still queued or running), conversations that belong to no thread, and
artifacts made before then; in batches of one transaction each, so answers go on while it works. Every
worker runs it; on PostgreSQL they skip the rows another one has locked, so two passes at once do no harm.

A pass that fails is logged and tried again at the next one: retention must never stop a worker.

Memory is looked after here too (`QuietRelease`): the caches of a worker forget users that went idle (MCP
sessions, identities, tool lists), but the freed memory stays with the process (CPython's arenas, glibc's
heap), so once the worker has answered nobody for a while, `release_memory` gives it back to the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache

from omni_bridge.stores import PruneCounts, ServiceStore

__all__ = ["DEFAULT_INTERVAL_SECONDS", "QuietRelease", "Retention", "release_memory"]

log = logging.getLogger("omni_bridge.server.retention")

DEFAULT_INTERVAL_SECONDS = 3600.0
"""How often a worker prunes (and once at start)."""


class Retention:
    """The periodic prune of one worker (started and stopped by the `Service`).

    Args:
        store: the service's store.
        days: keep this many days (`BRIDGE_RETENTION_DAYS`); 0 keeps everything and nothing runs.
        interval_seconds: time between two passes.
        clock: now, as an aware datetime (tests move it forward instead of waiting).
    """

    def __init__(
        self,
        store: ServiceStore,
        days: float,
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if days < 0 or interval_seconds <= 0:
            raise ValueError("days must not be negative and interval_seconds must be positive")
        self.store = store
        self.days = days
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.passes = 0
        """Passes completed (failed ones not counted)."""
        self.last: PruneCounts | None = None
        """What the latest pass deleted."""
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    def __repr__(self) -> str:
        state = "off" if not self.enabled else ("running" if self._task is not None else "stopped")
        return f"<Retention days={self.days:g} every={self.interval_seconds:g}s passes={self.passes} {state}>"

    @property
    def enabled(self) -> bool:
        return self.days > 0

    def cutoff(self) -> datetime:
        """Records last touched before this moment are deleted."""
        return self.clock() - timedelta(days=self.days)

    async def prune_once(self) -> PruneCounts:
        """One pass now; what it deleted (logged when anything was)."""
        cutoff = self.cutoff()
        counts = await self.store.prune(cutoff)
        self.passes += 1
        self.last = counts
        if counts.total:
            log.info("retention: deleted %s last changed before %s", counts, cutoff.isoformat(timespec="seconds"))
        else:
            log.debug("retention: nothing older than %s", cutoff.isoformat(timespec="seconds"))
        self._done.set()
        return counts

    async def wait_for_passes(self, count: int) -> None:
        """Return once `count` passes have completed (for tests and tools; the caller bounds the wait)."""
        while self.passes < count:
            self._done.clear()
            await self._done.wait()

    def start(self) -> None:
        """Run a pass now and then every `interval_seconds`, in the background, unless retention is off."""
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop the background passes: cancelled and awaited (a batch in flight rolls back), within the grace."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(grace_seconds):
                await task
        if not task.done():
            log.warning("retention: the pass did not stop within %g s; leaving it", grace_seconds)

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception:
                log.exception("retention: the pass failed; trying again in %g s", self.interval_seconds)
            await asyncio.sleep(self.interval_seconds)


class QuietRelease:
    """Calls `release_memory` once a worker that answered has answered nobody for `quiet_seconds`.

    Quiet means no run in flight and none ended for that long: by then the users' sessions and identities have
    expired (the service passes the longer of their idle times, with room for the sweeps), so what they held
    is free. It runs once per quiet spell; a busy worker is never interrupted by a full collection.

    Args:
        busy: whether a run is in flight now.
        quiet_seconds: how long without a run before memory is released.
        clock: monotonic seconds.
    """

    def __init__(
        self, busy: Callable[[], bool], quiet_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._busy = busy
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._last_active = clock()
        self._pending = False
        """Something ran since the last release."""
        self.releases = 0
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<QuietRelease after={self.quiet_seconds:g}s releases={self.releases}>"

    def activity(self) -> None:
        """A run started or ended: the quiet spell starts again."""
        self._last_active = self._clock()
        self._pending = True

    def check(self) -> bool:
        """Release now if the worker has been quiet long enough since it last answered; whether it did."""
        if self._busy():
            self.activity()
            return False
        if not self._pending or self._clock() - self._last_active < self.quiet_seconds:
            return False
        self._pending = False
        before = _rss_kib()
        release_memory()
        self.releases += 1
        after = _rss_kib()
        if before is not None and after is not None:
            log.info("quiet for %g s: memory released, RSS %d → %d KiB", self.quiet_seconds, before, after)
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memory release")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        tick = max(0.5, min(self.quiet_seconds / 5, 30.0))
        while True:
            await asyncio.sleep(tick)
            self.check()


def release_memory() -> None:
    """Give memory no longer used back to the system: a full collection, then glibc's `malloc_trim` (Linux).

    CPython keeps freed small objects in its own arenas and glibc keeps freed heap pages, so after many users
    have come and gone the process stays at its peak size; trimming returns the free pages. Harmless (and a
    no-op beyond the collection) where glibc is not the allocator.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _rss_kib() -> int | None:
    """This process's resident set size, where `/proc` tells it (Linux)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return trim
