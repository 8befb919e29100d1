"""`GET /v1/responses/{id}/events`: a response's events as server-sent events, replayed then followed live.

Written on Starlette's `StreamingResponse` rather than a helper library: the format is four lines, and the
stream's end condition (the response's terminal event, or its terminal status once every stored event was
sent) needs the store anyway.

Two sources, one numbering. On the worker that runs the response a stream reads the run's `LiveEvents`, so
each event goes out as it is produced, not once the runner's writer has stored it; elsewhere (another
worker, or once the run is over) it reads the store and wakes on `wait_for_change`. A live stream that fell
behind what the buffer keeps reads the missing events from the store and goes on live; one whose run ended
without a `final_message` (a lost lease, a store failure) goes on from the store, which has the last word.

Each frame is `id: <seq>`, `event: <type>`, `data: <event JSON>`; a client that reconnects with
`Last-Event-ID` (or `?after=`) gets only what it has not seen. While nothing happens a comment line goes out
every `HEARTBEAT_SECONDS` so proxies keep the connection open. The stream ends with `event: end` after the
`final_message` event (read live: once the run's end is stored too, so a read after `end` finds the response
ended), or once a response ended without one (a lost worker, a cancel before it started) and its events are
all sent.

Streams are bounded: one lasts as long as its response runs (or until its client goes away, which cancels
it), and one end user has at most `MAX_STREAMS_PER_USER` open on a worker at once (`Followers`); past that a
new one is refused with 429 before it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from omni_bridge.server._envelope import ApiError
from omni_bridge.server._live import LiveEvents
from omni_bridge.server._openapi import Operation, Param
from omni_bridge.stores import TERMINAL_STATUSES, Owner, StoredEvent

if TYPE_CHECKING:
    from omni_bridge.server._service import Service

__all__ = ["HEARTBEAT_SECONDS", "MAX_STREAMS_PER_USER", "Followers", "events_operation", "stream_events"]

HEARTBEAT_SECONDS = 15.0
"""The default quiet time after which a comment line keeps the connection open (`Service.sse_heartbeat_seconds`)."""
_LOOK_SECONDS = 1.0
"""The longest a stream waits before it reads the store again, woken or not."""
_TERMINAL_EVENT = "final_message"
_MAX_SEQ = 2**62
MAX_STREAMS_PER_USER = 16
"""Event streams one end user may have open on one worker at once (several tabs, several responses)."""
_RETRY_AFTER_SECONDS = 5


class _Ticket:
    """One open stream's place in `Followers`, given back by `release` or, failing that, when it is collected."""

    __slots__ = ("__weakref__", "release")

    release: weakref.finalize[[Owner], None]  # mypy's stub types the referent as None; it is the ticket


class Followers:
    """The event streams open on this worker, counted per end user, at most `max_per_user` each.

    A stream takes a ticket before it starts (`enter`) and gives it back when it ends; a ticket of a stream
    that never started (its client left before the body was sent) is given back when it is collected, so a
    count can never leak. An owner with no stream left is forgotten: the map holds only owners streaming now.
    """

    def __init__(self, max_per_user: int = MAX_STREAMS_PER_USER) -> None:
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self.max_per_user = max_per_user
        self._open: dict[Owner, int] = {}

    def __repr__(self) -> str:
        return f"<Followers streams={len(self)} users={len(self._open)} max_per_user={self.max_per_user}>"

    def __len__(self) -> int:
        """Streams open now."""
        return sum(self._open.values())

    @property
    def users(self) -> int:
        """End users with a stream open now."""
        return len(self._open)

    def enter(self, owner: Owner) -> _Ticket:
        """A ticket for one more stream of `owner`.

        Raises:
            ApiError: 429 (`rate_limited`, with `Retry-After`) when `owner` has `max_per_user` streams open.
        """
        if self._open.get(owner, 0) >= self.max_per_user:
            raise ApiError(
                429,
                "rate_limited",
                f"this end user already follows {self.max_per_user} event streams on this worker; close one "
                "(or poll GET /v1/responses/{id}) and try again",
                headers={"Retry-After": str(_RETRY_AFTER_SECONDS)},
            )
        self._open[owner] = self._open.get(owner, 0) + 1
        ticket = _Ticket()
        ticket.release = weakref.finalize(ticket, self._leave, owner)  # type: ignore[arg-type]
        return ticket

    def _leave(self, owner: Owner) -> None:
        left = self._open.get(owner, 0) - 1
        if left > 0:
            self._open[owner] = left
        else:
            self._open.pop(owner, None)


def events_operation(user: Param, response: Param) -> Operation:
    """The OpenAPI description of the events stream."""
    return Operation(
        method="GET",
        path="/v1/responses/{response_id}/events",
        operation_id="streamResponseEvents",
        summary="Follow a response as server-sent events",
        description="Frames `id: <seq>`, `event: <type>`, `data: <event JSON>`; replays after `Last-Event-ID` "
        "(or `after`), follows live, ends with `event: end` after the `final_message` event. An end user may "
        f"follow {MAX_STREAMS_PER_USER} streams at once on a worker; past that the answer is 429 with `Retry-After`.",
        tag="threads",
        params=(
            user,
            response,
            Param(
                "Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "Resume after this event."
            ),
            Param("after", "query", {"type": "integer", "minimum": 0}, "Resume after this event number."),
        ),
        media_type="text/event-stream",
        errors=(404,),
    )


def _resume_point(request: Request) -> int:
    raw = request.headers.get("last-event-id")
    name = "Last-Event-ID"
    if raw is None:
        raw, name = request.query_params.get("after"), "after"
    if raw is None or raw.strip() == "":
        return 0
    raw = raw.strip()
    # The length first: `int()` refuses (ValueError) a string of more than 4300 digits.
    if len(raw) > len(str(_MAX_SEQ)) or not raw.isascii() or not raw.isdigit() or int(raw) > _MAX_SEQ:
        raise ApiError(
            400, "invalid_request", f"`{name}` must be an event number (a whole number from 0 to {_MAX_SEQ})"
        )
    return int(raw)


def _frame(event: StoredEvent) -> str:
    kind = str(event.event.get("type", "message"))
    return f"id: {event.seq}\nevent: {kind}\ndata: {json.dumps(event.event, separators=(',', ':'))}\n\n"


async def stream_events(service: Service, request: Request, owner: Owner, response_id: str) -> Response:
    """The event stream of one response of `owner` (404 before the stream starts if there is none)."""
    after = _resume_point(request)
    live = service.runner.live(owner, response_id)
    first = live.after(after) if live is not None else None
    if first is None:
        first = await service.store.events_after(owner, response_id, after)
    if first is None:
        raise ApiError(404, "not_found", "no such response for this user")
    ticket = service.followers.enter(owner)
    return StreamingResponse(
        _follow(service, owner, response_id, after, first, ticket),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _follow(
    service: Service, owner: Owner, response_id: str, seq: int, batch: list[StoredEvent], ticket: _Ticket
) -> AsyncIterator[str]:
    try:
        async for frame in _frames(service, owner, response_id, seq, batch):
            yield frame
    finally:
        ticket.release()


async def _frames(
    service: Service, owner: Owner, response_id: str, seq: int, batch: list[StoredEvent]
) -> AsyncIterator[str]:
    store = service.store
    loop = asyncio.get_running_loop()
    heartbeat = service.sse_heartbeat_seconds
    end = f"event: end\ndata: {json.dumps({'response_id': response_id})}\n\n"
    last_sent = loop.time()
    live: LiveEvents | None = None
    while True:
        for event in batch:
            yield _frame(event)
            last_sent = loop.time()
            seq = event.seq
            if event.event.get("type") == _TERMINAL_EVENT:
                await _until_stored(service.runner.live(owner, response_id), heartbeat)
                yield end
                return
        if live is None:
            # Looked up each round: a stream that started before the run was claimed (or on the store) goes
            # live as soon as the run is here.
            live = service.runner.live(owner, response_id)
        if live is not None and not live.closed:
            changed = live.changed
            live_batch = live.after(seq)
            if live_batch is None:  # fell behind the buffer: the missing events are in the store
                batch = await store.events_after(owner, response_id, seq) or []
                continue
            batch = live_batch
            if batch:
                continue
            if service.closing:
                return  # the client reconnects with Last-Event-ID (to another worker)
            if loop.time() - last_sent >= heartbeat:
                yield ": keep-alive\n\n"
                last_sent = loop.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(last_sent + heartbeat - loop.time(), 0.0)):
                    await changed.wait()
            continue
        if live is not None:
            # The run is over: what it still had is read first, then the store decides.
            batch = live.after(seq) or []
            live = None
            if batch:
                continue
        # Read the status before the events: if it was over then, the events read after it are the last.
        response = await store.get_response(owner, response_id)
        batch = await store.events_after(owner, response_id, seq) or []
        if batch:
            continue
        if response is None or response.status in TERMINAL_STATUSES:
            yield end
            return
        if service.closing:
            return  # the client reconnects with Last-Event-ID (to another worker)
        if loop.time() - last_sent >= heartbeat:
            yield ": keep-alive\n\n"
            last_sent = loop.time()
        # Capped: a change made between the reads above and the start of the wait does not wake it.
        await store.wait_for_change(response_id, min(max(last_sent + heartbeat - loop.time(), 0.0), _LOOK_SECONDS))


async def _until_stored(live: LiveEvents | None, max_wait: float) -> None:
    """Return once the run of `live` (if it still runs here) has stored its end, `max_wait` seconds at most.

    The run closes its live events in the step its `finish` returns, so the stream's `end` follows the commit
    with nothing else awaited in between.
    """
    if live is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max_wait):
            while not live.closed:
                await live.changed.wait()
