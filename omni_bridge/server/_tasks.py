"""Stopping a helper task without waiting on it for ever: `stop_task`, and `until_set` to race a wait with an event.

A plain `task.cancel(); await task` waits as long as the task wants. A cancel can be lost on its way in: on
Python 3.11 `asyncio.wait_for` (which psycopg_pool uses to wait for a connection) returns normally when the
cancel lands just as its inner wait completes (CPython gh-86296), so the task goes on as if nothing was asked.
A task that loops then never ends, and whoever awaits it never ends either. Here a stop is bounded: cancel,
wait a moment, cancel again, wait another moment; a task still running after that is reported and left
behind, and the caller goes on. Tasks that loop should also check a fact of their own (an `asyncio.Event`
saying the work is over) after every await, so that a lost cancel costs one more round, not the rest of time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

__all__ = ["stop_task", "until_set"]

log = logging.getLogger("omni_bridge.server.tasks")


async def stop_task(task: asyncio.Task[object] | asyncio.Task[None], *, grace: float, name: str) -> bool:
    """Cancel `task` and wait at most `grace` seconds, twice; never longer.

    The task's own exception, if it ended with one, is logged (not raised): the caller is stopping it, not
    asking for its result.

    Returns:
        True when the task has ended; False when it is still running after two cancels (it is logged and
        left behind: the caller keeps a reference if it wants to look again later).
    """
    for attempt in (1, 2):
        if task.done():
            break
        task.cancel()
        await asyncio.wait([task], timeout=grace)
        if not task.done() and attempt == 1:
            log.warning("%s did not stop within %.1f s of a cancel (a lost cancel?); cancelling again", name, grace)
    if not task.done():
        log.warning("%s still runs after two cancels; leaving it behind", name)
        return False
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("%s ended with %r while being stopped", name, error)
    return True


async def until_set(work: Awaitable[object], event: asyncio.Event) -> bool:
    """Await `work` until it is done or `event` is set, whichever comes first.

    `work` runs in its own task, cancelled (not awaited) when the event comes first: a wait it is in the middle
    of cannot hold the caller back.

    Returns:
        True when the event is set (checked last, so a caller stops even when both happened).

    Raises:
        Exception: what `work` raised, when it ended first with an error.
    """
    if event.is_set():
        if asyncio.iscoroutine(work):
            work.close()
        return True
    worker = asyncio.ensure_future(work)
    ended = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([worker, ended], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (worker, ended):
            if not task.done():
                task.cancel()
                task.add_done_callback(_consume)
    if worker.done() and not worker.cancelled():
        worker.result()
    return event.is_set()


def _consume(task: asyncio.Future[object]) -> None:
    """Retrieve a left task's outcome, so a late error is not reported as 'never retrieved'."""
    if not task.cancelled():
        task.exception()
