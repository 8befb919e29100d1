"""`ResponseRunner`: runs responses on this worker, from claim to finish, and stops them when asked.

Each response runs in its own asyncio task on the worker that received it. The task `claim`s the response
(a lease of `BRIDGE_LEASE_SECONDS`), feeds the events of `Bridge.ask` into the store, and `finish`es it with
the assistant message built from the `FinalMessage`. Beside it, two helper tasks:

- a **writer** batches events (text deltas arrive many per second) and writes them with the parts and
  progress so far, at most every `flush_seconds`, so pollers see progress without a write per token;
- a **watcher** renews the lease every lease/3 and notices a cancel asked on another worker
  (`cancel_requested`), waking early through `wait_for_change`; a lost lease stops the run without writing
  anything more (the reaper of another worker has ended it as `worker_lost`).

Cancelling a run cancels its task: the Bridge then cancels the LLM stream and the MCP calls in flight. A
canceled (or shut down) run still writes a message with what it had produced, outcome `canceled`.

One database, one transaction per write: the run hands `Bridge.ask` a `save` that only keeps a copy of the
conversation (the engines call it after each LLM turn); the writer stores that copy with the next batch of
events, and `finish` stores the last one in the transaction that ends the response with its assistant message.
A run that breaks off (worker lost) leaves the transcript as its last completed LLM turn saved it, which the
next question repairs, as everywhere else in the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from omni_bridge.agent import Bridge, Conversation, EndUser
from omni_bridge.agent.events import (
    AssistantMessage,
    ErrorEvent,
    Event,
    EventAdapter,
    FinalMessage,
    new_message_id,
)
from omni_bridge.exceptions import OmniBridgeError
from omni_bridge.server._progress import PartsSoFar, progress_line
from omni_bridge.stores import (
    MessageRecord,
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


@dataclass
class _Run:
    """One response running here, and what its helper tasks share."""

    response: ResponseRecord
    user: str | EndUser
    engine: EngineName | None
    task: asyncio.Task[None] | None = None
    asking: bool = False
    stop_reason: StopCause | None = None
    parts: PartsSoFar = field(default_factory=PartsSoFar)
    progress: str | None = None
    pending: list[dict[str, object]] = field(default_factory=list)
    parts_changed: bool = False
    progress_changed: bool = False
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the run has all its events: the writer writes what is left at once, then ends."""
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
    """

    def __init__(
        self,
        store: ServiceStore,
        bridge: Bridge,
        *,
        worker_id: str,
        lease_seconds: float,
        flush_seconds: float = 0.05,
    ) -> None:
        self._store = store
        self._bridge = bridge
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.flush_seconds = flush_seconds
        self._runs: dict[str, _Run] = {}
        self._hook_tasks: set[asyncio.Task[None]] = set()
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
    ) -> None:
        """Run `response` in the background on this worker.

        Args:
            response: a queued response, as written to the store.
            user: the end user with a profile to upsert; default: the owner's user id alone.
            engine: the engine of a new thread; an existing conversation keeps its own.

        Raises:
            RuntimeError: the runner is closed (the service is shutting down).
        """
        if self._closed:
            raise RuntimeError("the runner is closed")
        if response.id in self._runs:
            return
        run = _Run(response=response, user=user or response.owner.user, engine=engine)
        self._runs[response.id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"response {response.id}")
        run.task.add_done_callback(lambda _task: self._runs.pop(response.id, None))

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
        """Stop every run (each ends `canceled` with a `worker_shutdown` error) and wait for them and the hooks."""
        self._closed = True
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for run in list(self._runs.values()):
            self._stop(run, "shutdown")
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
        if self._hook_tasks:
            _done, late = await asyncio.wait(self._hook_tasks, timeout=grace_seconds)
            for task in late:
                task.cancel()

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

    async def _run_claimed(self, run: _Run) -> None:
        response = run.response
        claimed = await self._store.claim(response.id, self.worker_id, self._lease_until())
        if claimed is None:
            log.debug("response %s was not claimable (canceled or taken)", response.id)
            return
        run.response = claimed
        writer = asyncio.create_task(self._write(run), name=f"writer {response.id}")
        watcher = asyncio.create_task(self._watch(run), name=f"watcher {response.id}")
        final: AssistantMessage | None = None
        error: ResponseError | None = None
        try:
            if run.stop_reason is None:
                run.asking = True
                final, error = await self._ask(run)
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
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if run.stop_reason == "lease_lost":
            writer.cancel()
            log.warning("response %s: this worker lost its lease; the run stopped", response.id)
            return
        if final is None:
            if run.stop_reason is None and error is None:
                error = ResponseError(type="internal_error", message="The answer ended without a final message.")
            final = self._closing_message(run, error)
            if run.stop_reason == "shutdown":
                error = SHUTDOWN
        run.closing.set()
        run.dirty.set()
        await writer
        if _lease_lost(run):
            return
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
        status = _STATUS_OF[final.outcome]
        finished = await self._store.finish(
            response.id, self.worker_id, status, message=message, error=error, conversation=run.conversation
        )
        if not finished:
            log.warning("response %s: the lease was lost before it could finish", response.id)
            return
        ended = await self._store.get_response(response.owner, response.id)
        if ended is not None:
            self.notify_finished(ended)

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
            user=run.user, question=response.prompt, conversation_id=response.thread_id, engine=run.engine, save=keep
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
        """Queue the event for the writer (stamped with this response's id) and update the parts so far."""
        event = event.model_copy(update={"response_id": run.response.id})
        run.pending.append(EventAdapter.dump_python(event, mode="json"))
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
            if run.pending or run.parts_changed or run.progress_changed or run.conversation_changed:
                events, run.pending = run.pending, []
                parts = run.parts.build() if run.parts_changed else None
                progress = run.progress if run.progress_changed else None
                conversation = run.conversation if run.conversation_changed else None
                run.parts_changed = run.progress_changed = run.conversation_changed = False
                written = await self._store.append(
                    run.response.id, self.worker_id, events, parts=parts, progress=progress, conversation=conversation
                )
                if not written:
                    self._stop(run, "lease_lost")
                    return
                if progress is not None:
                    for hook in self._progress_hooks:
                        self._spawn_hook(hook(run.response, progress), run.response.id)
            if run.closing.is_set() and not run.pending:
                return
            # Pace the writes (deltas arrive many per second), but not past the end of the run.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await run.closing.wait()

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
        while True:
            # A change made between the last look and the start of this wait does not wake it: the wait is
            # capped, so such a cancel is seen within `_LOOK_SECONDS` anyway.
            await self._store.wait_for_change(response.id, min(max(next_beat - loop.time(), 0.0), _LOOK_SECONDS))
            # Our own writes wake the wait too: look no more often than this (what changed meanwhile is seen).
            await asyncio.sleep(min(_PACE_SECONDS, interval))
            if loop.time() >= next_beat:
                current = await self._store.heartbeat(response.id, self.worker_id, self._lease_until())
                next_beat = loop.time() + interval
            else:
                current = await self._store.get_response(response.owner, response.id)
            if current is None or current.status != "running" or current.worker != self.worker_id:
                self._stop(run, "lease_lost")
                return
            if current.cancel_requested:
                self._stop(run, "canceled")
                return

    def _spawn_hook(self, call: Awaitable[None], response_id: str) -> None:
        async def guarded() -> None:
            try:
                await call
            except Exception:
                log.exception("a hook failed for response %s", response_id)

        task = asyncio.create_task(guarded())
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)


def _lease_lost(run: _Run) -> bool:
    """Whether the run's lease was found lost (it may change while the run awaits)."""
    return run.stop_reason == "lease_lost"
