"""`ResponseRunner`: runs responses on this worker, from claim to finish, and stops them when asked.

Each response runs in its own asyncio task on the worker that received it. The response is stored already
running under this worker's lease (`leased`, in the transaction of its thread and message: no `claim` write
before the engine starts), or, queued, the task `claim`s it (a lease of `BRIDGE_LEASE_SECONDS`); the task feeds
the events of `Bridge.ask` into the store, and `finish`es it with the assistant message built from the
`FinalMessage`. Beside it, two helper tasks:

- a **writer** batches events (text deltas arrive many per second) and writes them with the parts and
  progress so far, at most every `flush_seconds`, so pollers and followers on other workers see progress
  without a write per token;
- a **watcher** renews the lease every lease/3 and notices a cancel asked on another worker
  (`cancel_requested`), waking early through `wait_for_change`; a lost lease stops the run without writing
  anything more (the reaper of another worker has ended it as `worker_lost`).

No run outlives its lease, and no lease outlives its run, however a cancel is delivered. A cancel can be lost
on its way in (on Python 3.11 `asyncio.wait_for`, which psycopg_pool waits with, returns normally when a cancel
lands as its wait completes; see `_tasks`), so the end of a run is a fact, not only a cancel:

- `_Run.ended` is set first when the engine's part is over; the watcher waits on it beside `wait_for_change`
  and looks at it after every await, so it returns on its own even when the cancel sent to it is lost, and
  whatever it read after the end (a lease released by `finish`) is not taken for news;
- stopping a helper is bounded (`stop_task`: cancel, wait a moment, cancel again, log, go on), for the
  watcher, the writer and `aclose` alike, and `finish` waits on no helper (they are stopped after it): once
  the run has all its events, `finish` writes every one not known to be written, with its number
  (`first_seq`), in its transaction; those a writer's append in flight commits first are skipped, and an
  append that comes after `finish` is refused (the lease is released), so each event is stored once, in order;
- a heartbeat that comes late, after `finish`, finds the response ended and renews nothing: both stores renew
  only a lease that is `running` under this worker, checked in the transaction that writes it;
- a stop asked while the engine runs decides the outcome even when the cancel sent to the run task is lost
  and the engine answers in full: the run ends `canceled` (or shut down) as if the cancel had arrived then.

Cancelling a run cancels its task: the Bridge then cancels the LLM stream and the MCP calls in flight. A
canceled (or shut down) run still writes a message with what it had produced, outcome `canceled`; one stopped
before its engine produced any event writes none (error `canceled`, as a response canceled while queued).

Followers and pollers on this worker do not wait for the writer: each event also goes, numbered, to the run's
`LiveEvents` (`live`) as it is produced, and `snapshot` gives a poller the running response as it stands (its
parts and progress so far). The store's numbering of the same events is the same (see `_live`). In the step
`finish` returns (nothing awaited in between) the live events close, so a follower's stream ends, and
`snapshot` gives nothing, so pollers read the ended response from the store.

One database, one transaction per write: the run hands `Bridge.ask` a `save` that only keeps a copy of the
conversation (the engines call it after each LLM turn); the writer stores that copy with the next batch of
events, and `finish` stores the last one in the transaction that ends the response with its assistant message.
A run that breaks off (worker lost) leaves the transcript as its last completed LLM turn saved it, which the
next question repairs, as everywhere else in the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from omni_bridge.agent import Bridge, Conversation, EndUser
from omni_bridge.agent.engines import JobOptions
from omni_bridge.agent.events import (
    AssistantMessage,
    ErrorEvent,
    Event,
    EventAdapter,
    FinalMessage,
    new_message_id,
)
from omni_bridge.exceptions import OmniBridgeError
from omni_bridge.server._live import KEEP_WRITTEN, LiveEvents
from omni_bridge.server._progress import PartsSoFar, progress_line
from omni_bridge.server._tasks import stop_task, until_set
from omni_bridge.stores import (
    CANCELED_QUEUED,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ResponseStatus,
    ServiceStore,
    without_thinking,
)
from omni_bridge.types import EngineName

__all__ = ["SHUTDOWN", "FinishedHook", "ProgressHook", "ResponseRunner"]

log = logging.getLogger("omni_bridge.server.runner")

FinishedHook = Callable[[ResponseRecord], Awaitable[None]]
"""Called with the ended response (as stored) after a run on this worker finishes, or the reaper ends one."""
ProgressHook = Callable[[ResponseRecord, str], Awaitable[None]]
"""Called with the running response and its new progress line."""

SHUTDOWN = ResponseError(
    type="worker_shutdown", message="The service shut down while this response was running; ask again."
)
_STATUS_OF: dict[str, ResponseStatus] = {"completed": "succeeded", "errored": "failed", "canceled": "canceled"}
StopCause = Literal["canceled", "shutdown", "lease_lost"]
_LOOK_SECONDS = 1.0
"""The longest a run goes without looking for a cancel asked on another worker."""
_PACE_SECONDS = 0.1
"""The shortest time between two looks (a run's own writes wake its watcher too)."""
_STOP_GRACE_SECONDS = 1.0
"""How long a helper task (or, at shutdown, a run) gets after each of the two cancels that stop it."""


@dataclass
class _Run:
    """One response running here, and what its helper tasks share."""

    response: ResponseRecord
    user: str | EndUser
    engine: EngineName | None
    live: LiveEvents
    """The events as they are produced, for followers on this worker."""
    job_options: JobOptions | None = None
    task: asyncio.Task[None] | None = None
    asking: bool = False
    stop_reason: StopCause | None = None
    parts: PartsSoFar = field(default_factory=PartsSoFar)
    progress: str | None = None
    pending: list[dict[str, object]] = field(default_factory=list)
    parts_changed: bool = False
    progress_changed: bool = False
    claimed: bool = False
    """Set once the run holds its lease (stored by `leased`, or claimed): from then until `finish` is stored,
    `snapshot` shows the run as it stands."""
    finished: bool = False
    """Set once `finish` is stored (or the run broke off): the store has the last word."""
    updated_at: datetime | None = None
    """When the run last recorded an event (what a poller sees as `updated_at`)."""
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the run has all its events: the writer ends (the rest goes with `finish`)."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set first when the engine's part of the run is over, however it ended: the watcher stops on it."""
    writer_released: bool = False
    """Set when the run stopped waiting for its writer: a writer still going writes nothing more."""
    conversation: Conversation | None = None
    """The conversation as the engine last saved it: written with the next events, and by `finish`."""
    conversation_changed: bool = False


class ResponseRunner:
    """Runs responses on this worker (see the module docstring).

    Args:
        store: where responses, events and messages are kept.
        bridge: the running bridge that answers.
        worker_id: this worker's name in leases.
        lease_seconds: how long a claim or heartbeat holds a response.
        flush_seconds: the longest events wait before they are written.
        live_keep: written events each run keeps in memory for its followers here (`LiveEvents`).
    """

    def __init__(
        self,
        store: ServiceStore,
        bridge: Bridge,
        *,
        worker_id: str,
        lease_seconds: float,
        flush_seconds: float = 0.05,
        live_keep: int = KEEP_WRITTEN,
    ) -> None:
        self._store = store
        self._bridge = bridge
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.flush_seconds = flush_seconds
        self.live_keep = live_keep
        self._runs: dict[str, _Run] = {}
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._helpers: set[asyncio.Task[None]] = set()
        """The runs' writers and watchers, kept until they end (one left behind by a bounded stop included)."""
        self._finished_hooks: list[FinishedHook] = []
        self._progress_hooks: list[ProgressHook] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<ResponseRunner worker={self.worker_id!r} running={len(self._runs)}>"

    @property
    def running(self) -> frozenset[str]:
        """The ids of the responses running on this worker."""
        return frozenset(self._runs)

    def on_finished(self, hook: FinishedHook) -> None:
        """Call `hook` whenever a response ends here (run finished, or ended by this worker's reaper)."""
        self._finished_hooks.append(hook)

    def on_progress(self, hook: ProgressHook) -> None:
        """Call `hook` whenever a response running here has a new progress line."""
        self._progress_hooks.append(hook)

    def start(
        self,
        response: ResponseRecord,
        *,
        user: EndUser | None = None,
        engine: EngineName | None = None,
        job_options: JobOptions | None = None,
    ) -> None:
        """Run `response` in the background on this worker.

        Args:
            response: a queued response, or one made `leased` by this runner, as written to the store.
            user: the end user with a profile to upsert; default: the owner's user id alone.
            engine: the engine of a new thread; an existing conversation keeps its own.
            job_options: an AI job's branch and attachments (kept in memory only: a queued response is run by
                the worker that wrote it, or ends lost).

        Raises:
            RuntimeError: the runner is closed (the service is shutting down).
        """
        if self._closed:
            raise RuntimeError("the runner is closed")
        if response.id in self._runs:
            return
        live = LiveEvents(response.id, response.owner, keep_written=self.live_keep)
        run = _Run(
            response=response, user=user or response.owner.user, engine=engine, live=live, job_options=job_options
        )
        run.claimed = response.status == "running" and response.worker == self.worker_id  # stored as `leased` made it
        self._runs[response.id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"response {response.id}")
        run.task.add_done_callback(lambda _task: self._runs.pop(response.id, None))

    def leased(self, response: ResponseRecord) -> ResponseRecord:
        """A new `response` as this worker runs it at once: `running`, leased to this worker from now.

        Stored so with its thread and message (in their transaction) and then `start`ed, it needs no `claim`
        write before the engine starts. A worker that dies in between leaves a lease that runs out: the
        reaper ends the response as `worker_lost`, as one that dies mid-run.
        """
        moment = datetime.now(UTC)
        return response.model_copy(
            update={
                "status": "running",
                "worker": self.worker_id,
                "lease_expires_at": moment + timedelta(seconds=self.lease_seconds),
                "started_at": moment,
                "updated_at": moment,
            }
        )

    def live(self, owner: Owner, response_id: str) -> LiveEvents | None:
        """The live events of `owner`'s response running on this worker; `None` when it does not run here."""
        run = self._runs.get(response_id)
        if run is None or run.response.owner != owner:
            return None
        return run.live

    def snapshot(self, owner: Owner, response_id: str) -> ResponseRecord | None:
        """`owner`'s response running on this worker as it stands now (parts and progress so far, unwritten
        ones included); `None` when it does not run here, is not claimed yet or is already finished."""
        run = self._runs.get(response_id)
        if run is None or run.response.owner != owner or not run.claimed or run.finished:
            return None
        changes: dict[str, object] = {"parts": run.parts.build(), "progress": run.progress}
        if run.updated_at is not None:
            changes["updated_at"] = run.updated_at
        if run.stop_reason == "canceled":
            changes["cancel_requested"] = True
        return run.response.model_copy(update=changes)

    async def cancel(self, response_id: str, *, wait: float = 0.0) -> bool:
        """Stop a response running on this worker; wait up to `wait` seconds for it to end.

        Returns:
            True when it was running here.
        """
        run = self._runs.get(response_id)
        if run is None:
            return False
        self._stop(run, "canceled")
        if wait > 0 and run.task is not None:
            await asyncio.wait([run.task], timeout=wait)
        return True

    async def wait(self, response_id: str) -> None:
        """Return once the response is not running on this worker any more."""
        run = self._runs.get(response_id)
        if run is not None and run.task is not None:
            await asyncio.wait([run.task])

    async def aclose(self, *, grace_seconds: float = 10.0) -> None:
        """Stop every run (each ends `canceled` with a `worker_shutdown` error) and wait for them and the hooks.

        Bounded: runs and hooks get `grace_seconds`, then each is stopped with two cancels (`stop_task`) and
        one that still goes on is logged and left behind; the writers and watchers left likewise.
        """
        self._closed = True
        runs = list(self._runs.values())
        for run in runs:
            self._stop(run, "shutdown")
        tasks = {run.response.id: run.task for run in runs if run.task is not None}
        if tasks:
            await asyncio.wait(tasks.values(), timeout=grace_seconds)
            await _stop_all({f"the run of response {id_}": task for id_, task in tasks.items()})
        await _stop_all({task.get_name(): task for task in self._helpers})
        if self._hook_tasks:
            await asyncio.wait(self._hook_tasks, timeout=grace_seconds)
            await _stop_all({f"hook task {task.get_name()}": task for task in self._hook_tasks})

    def notify_finished(self, response: ResponseRecord) -> None:
        """Hand an ended response to the `on_finished` hooks (in the background)."""
        for hook in self._finished_hooks:
            self._spawn_hook(hook(response), response.id)

    # --- one run ------------------------------------------------------------------------------------------

    def _stop(self, run: _Run, reason: StopCause) -> None:
        if run.stop_reason is not None:
            return
        run.stop_reason = reason
        # Only the engine's part of a run is cancelled: before it the run sees `stop_reason` once its claim is
        # known, after it the run ends with the message it has (a second cancel would cut its own writes).
        if run.asking and run.task is not None and not run.task.done():
            run.task.cancel()

    def _lease_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.lease_seconds)

    async def _execute(self, run: _Run) -> None:
        try:
            await self._run_claimed(run)
        except Exception:
            # The store failed under the run: the lease runs out and the reaper ends it as `worker_lost`.
            log.exception("response %s: the run broke off", run.response.id)
        finally:
            run.finished = True
            run.live.close()

    async def _run_claimed(self, run: _Run) -> None:
        response = run.response
        if not run.claimed:
            claimed = await self._store.claim(response.id, self.worker_id, self._lease_until())
            if claimed is None:
                log.debug("response %s was not claimable (canceled or taken)", response.id)
                return
            run.response = claimed
            run.claimed = True
        writer = self._helper(self._write(run), f"writer {response.id}")
        watcher = self._helper(self._watch(run), f"watcher {response.id}")
        helpers = {
            f"the lease watcher of response {response.id}": watcher,
            f"the writer of response {response.id}": writer,
        }
        final: AssistantMessage | None = None
        error: ResponseError | None = None
        try:
            if run.stop_reason is None:
                run.asking = True
                final, error = await self._ask(run)
                if _stop_reason(run) is not None:
                    # Stopped while the engine ran, yet it answered in full: the cancel sent to this task was
                    # lost on its way (see `_tasks`). The stop decides, as if the cancel had come now.
                    log.warning("response %s: a stop (%s) did not reach the engine", response.id, run.stop_reason)
                    _forget_lost_cancel()
                    final, error = None, None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            run.stop_reason = run.stop_reason or "shutdown"
        except OmniBridgeError as exc:
            error = ResponseError(type=exc.error_type, message=str(exc))
            log.info("response %s failed: %s", response.id, error.type)
        except Exception:
            log.exception("response %s failed unexpectedly", response.id)
            error = ResponseError(type="internal_error", message="The service failed while answering; ask again.")
        finally:
            run.asking = False
            run.ended.set()
        # The writer is not waited for: `finish` writes every event not known to be written, numbered, so those an
        # append in flight commits first are skipped, and an append that comes after `finish` is refused.
        run.writer_released = True
        run.closing.set()
        run.dirty.set()
        try:
            if run.stop_reason == "lease_lost":
                log.warning("response %s: this worker lost its lease; the run stopped", response.id)
                return
            finished = await self._finish(run, final, error)
        finally:
            # In the step `finish` returns, nothing awaited in between: polls here read the ended response from
            # the store from now on, and live followers end their streams.
            run.finished = True
            run.live.close()
            # Only now: the watcher (it returns on `ended`) and the writer cost the end of the run nothing.
            await _stop_all(helpers)
        if finished:
            ended = await self._store.get_response(response.owner, response.id)
            if ended is not None:
                self.notify_finished(ended)

    async def _finish(self, run: _Run, final: AssistantMessage | None, error: ResponseError | None) -> bool:
        """Write the end of the run (its last events, status and message) in `finish`'s one transaction.

        Returns:
            False when the lease was lost first (nothing was written).
        """
        response = run.response
        if final is None:
            if run.stop_reason is None and error is None:
                error = ResponseError(type="internal_error", message="The answer ended without a final message.")
            if run.stop_reason is not None and run.live.last_seq == 0:
                # Stopped before the engine produced anything: no message, as for a cancel while queued.
                error = SHUTDOWN if run.stop_reason == "shutdown" else CANCELED_QUEUED
            else:
                final = self._closing_message(run, error)
                if run.stop_reason == "shutdown":
                    error = SHUTDOWN
        message: MessageRecord | None = None
        if final is not None:
            message = MessageRecord(
                id=final.id,
                thread_id=response.thread_id,
                owner=response.owner,
                role="assistant",
                parts=list(final.parts),
                outcome=final.outcome,
                response_id=response.id,
                created_at=final.created_at,
            )
        status: ResponseStatus = "canceled" if final is None else _STATUS_OF[final.outcome]
        events = list(run.pending)
        new_progress = run.progress if run.progress_changed else None
        finished = await self._store.finish(
            response.id,
            self.worker_id,
            status,
            message=message,
            error=error,
            conversation=run.conversation,
            events=events,
            first_seq=run.live.last_seq - len(events) + 1,
            progress=run.progress,
        )
        if not finished:
            log.warning("response %s: the lease was lost before it could finish", response.id)
            return False
        run.live.written(run.live.last_seq)
        if new_progress is not None:
            self._progressed(run, new_progress)
        return True

    async def _ask(self, run: _Run) -> tuple[AssistantMessage | None, ResponseError | None]:
        response = run.response
        final: AssistantMessage | None = None
        error: ResponseError | None = None

        async def keep(conversation: Conversation) -> None:
            # Not a reason to write by itself: it rides with the next batch of events, so the first write of a
            # run still goes out at once with the first progress (progress webhooks sample those writes).
            run.conversation = conversation.model_copy(deep=True)
            run.conversation_changed = True

        events = self._bridge.ask(
            user=run.user,
            question=response.prompt,
            conversation_id=response.thread_id,
            engine=run.engine,
            save=keep,
            job_options=run.job_options,
        )
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, ErrorEvent):
                    error = ResponseError(type=event.error_type, message=event.message)
                elif isinstance(event, FinalMessage):
                    final = event.message
                self._record(run, event)
        return final, error

    def _record(self, run: _Run, event: Event) -> None:
        """Hand the event (stamped with this response's id) to the live followers and queue it for the writer;
        update the parts so far."""
        event = event.model_copy(update={"response_id": run.response.id})
        dumped = EventAdapter.dump_python(event, mode="json")
        run.live.add(dumped)
        run.pending.append(dumped)
        run.updated_at = datetime.now(UTC)
        if run.parts.add(event):
            run.parts_changed = True
        line = progress_line(event)
        if line is not None and line != run.progress:
            run.progress, run.progress_changed = line, True
        run.dirty.set()

    def _closing_message(self, run: _Run, error: ResponseError | None) -> AssistantMessage:
        """The message of a run the engine did not end (canceled, shut down, failed): what it had produced."""
        outcome: Literal["errored", "canceled"] = "canceled" if run.stop_reason is not None else "errored"
        parts = without_thinking(run.parts.build())
        message = AssistantMessage(
            id=new_message_id(), conversation_id=run.response.thread_id, parts=parts, outcome=outcome
        )
        thread_id, response_id = run.response.thread_id, run.response.id
        if outcome == "errored" and error is not None:
            failed = ErrorEvent(
                conversation_id=thread_id,
                response_id=response_id,
                error_type=error.type,
                message=error.message,
                retryable=True,
            )
            self._record(run, failed)
        self._record(run, FinalMessage(conversation_id=thread_id, response_id=response_id, message=message))
        return message

    async def _write(self, run: _Run) -> None:
        """Write queued events with the parts and progress so far; batches for up to `flush_seconds`."""
        while True:
            await run.dirty.wait()
            run.dirty.clear()
            if run.closing.is_set():
                return  # the run writes what is left with `finish`
            written = await self._flush(run)
            if run.writer_released:
                return  # the run has stopped waiting for this writer and writes what is left itself
            if not written:
                self._stop(run, "lease_lost")
                return
            if run.closing.is_set():
                return  # the run writes what is left with `finish`
            # Pace the writes (deltas arrive many per second), but not past the end of the run.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await run.closing.wait()

    async def _flush(self, run: _Run) -> bool:
        """Write what is queued (events, and the parts, progress and conversation that changed), one `append`.

        Events leave the queue only once written, and a change not known to be written is marked changed
        again, so a flush cut off by a cancel (its transaction rolled back) leaves everything for the next one.

        Returns:
            False when this worker no longer holds the lease (nothing was written).
        """
        # The final message is left for `finish`: stored with the final status in one transaction, so a follower
        # on another worker never reads the end of a response that is still `running`.
        events = list(itertools.takewhile(lambda event: event["type"] != "final_message", run.pending))
        if not (events or run.parts_changed or run.progress_changed or run.conversation_changed):
            return True
        parts = run.parts.build() if run.parts_changed else None
        progress = run.progress if run.progress_changed else None
        conversation = run.conversation if run.conversation_changed else None
        run.parts_changed = run.progress_changed = run.conversation_changed = False
        try:
            written = await self._store.append(
                run.response.id, self.worker_id, events, parts=parts, progress=progress, conversation=conversation
            )
        except BaseException:
            run.parts_changed |= parts is not None
            run.progress_changed |= progress is not None
            run.conversation_changed |= conversation is not None
            raise
        if not written:
            return False
        del run.pending[: len(events)]
        run.live.written(run.live.last_seq - len(run.pending))
        if progress is not None:
            self._progressed(run, progress)
        return True

    def _progressed(self, run: _Run, progress: str) -> None:
        for hook in self._progress_hooks:
            self._spawn_hook(hook(run.response, progress), run.response.id)

    async def _watch(self, run: _Run) -> None:
        """Renew the lease every lease/3; stop the run on a cancel request or a lost lease."""
        try:
            await self._watch_lease(run)
        except Exception:
            log.exception("response %s: the lease watcher failed; the lease will run out", run.response.id)

    async def _watch_lease(self, run: _Run) -> None:
        loop = asyncio.get_running_loop()
        interval = self.lease_seconds / 3
        next_beat = loop.time() + interval
        response = run.response
        ended = run.ended
        # `ended` is looked at after every await: a cancel sent to this task may be lost (see `_tasks`).
        while not ended.is_set():
            # A change made between the last look and the start of this wait does not wake it: the wait is
            # capped, so such a cancel is seen within `_LOOK_SECONDS` anyway.
            wait = min(max(next_beat - loop.time(), 0.0), _LOOK_SECONDS)
            if await until_set(self._store.wait_for_change(response.id, wait), ended):
                return
            # Our own writes wake the wait too: look no more often than this (what changed meanwhile is seen).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_PACE_SECONDS, interval)):
                    await ended.wait()
            if ended.is_set():
                return
            if loop.time() >= next_beat:
                current = await self._store.heartbeat(response.id, self.worker_id, self._lease_until())
                next_beat = loop.time() + interval
            else:
                current = await self._store.get_response(response.owner, response.id)
            if ended.is_set():
                return  # what a look after the end finds (the lease released by `finish`) is no news
            if current is None or current.status != "running" or current.worker != self.worker_id:
                self._stop(run, "lease_lost")
                return
            if current.cancel_requested:
                self._stop(run, "canceled")
                return

    def _helper(self, work: Coroutine[object, object, None], name: str) -> asyncio.Task[None]:
        """Start a run's writer or watcher, kept in `_helpers` until it ends."""
        task = asyncio.create_task(work, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
        return task

    def _spawn_hook(self, call: Awaitable[None], response_id: str) -> None:
        async def guarded() -> None:
            try:
                await call
            except Exception:
                log.exception("a hook failed for response %s", response_id)

        task = asyncio.create_task(guarded())
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)


def _stop_reason(run: _Run) -> StopCause | None:
    """Why the run was told to stop, if it was (it may change while the run awaits)."""
    return run.stop_reason


def _lease_lost(run: _Run) -> bool:
    """Whether the run's lease was found lost (it may change while the run awaits)."""
    return run.stop_reason == "lease_lost"


def _forget_lost_cancel() -> None:
    """Take back a cancel this task was sent but never received, so it does not count against later waits."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()


async def _stop_all(tasks: dict[str, asyncio.Task[None]]) -> None:
    """`stop_task` for each of `tasks` (named by the keys), all at once."""
    if tasks:
        await asyncio.gather(*(stop_task(task, grace=_STOP_GRACE_SECONDS, name=name) for name, task in tasks.items()))
