"""`GET /v1/responses/{id}/events`: a response's events as server-sent events, replayed then followed live.

Written on Starlette's `StreamingResponse` rather than a helper library: the format is four lines, and the
stream's end condition (the response's terminal event, or its terminal status once every stored event was
sent) needs the store anyway. Each frame is `id: <seq>`, `event: <type>`, `data: <event JSON>`; a client that
reconnects with `Last-Event-ID` (or `?after=`) gets only what it has not seen. While nothing happens a
comment line goes out every `HEARTBEAT_SECONDS` so proxies keep the connection open. The stream ends with
`event: end` after the `final_message` event, or once a response ended without one (a lost worker, a cancel
before it started) and its events are all sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from omni_bridge.server._envelope import ApiError
from omni_bridge.server._openapi import Operation, Param
from omni_bridge.stores import TERMINAL_STATUSES, Owner, StoredEvent

if TYPE_CHECKING:
    from omni_bridge.server._service import Service

__all__ = ["HEARTBEAT_SECONDS", "events_operation", "stream_events"]

HEARTBEAT_SECONDS = 15.0
"""The default quiet time after which a comment line keeps the connection open (`Service.sse_heartbeat_seconds`)."""
_LOOK_SECONDS = 1.0
"""The longest a stream waits before it reads the store again, woken or not."""
_TERMINAL_EVENT = "final_message"
_MAX_SEQ = 2**62


def events_operation(user: Param, response: Param) -> Operation:
    """The OpenAPI description of the events stream."""
    return Operation(
        method="GET",
        path="/v1/responses/{response_id}/events",
        operation_id="streamResponseEvents",
        summary="Follow a response as server-sent events",
        description="Frames `id: <seq>`, `event: <type>`, `data: <event JSON>`; replays after `Last-Event-ID` "
        "(or `after`), follows live, ends with `event: end` after the `final_message` event.",
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
    first = await service.store.events_after(owner, response_id, after)
    if first is None:
        raise ApiError(404, "not_found", "no such response for this user")
    return StreamingResponse(
        _follow(service, owner, response_id, after, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _follow(
    service: Service, owner: Owner, response_id: str, seq: int, batch: list[StoredEvent]
) -> AsyncIterator[str]:
    store = service.store
    loop = asyncio.get_running_loop()
    heartbeat = service.sse_heartbeat_seconds
    end = f"event: end\ndata: {json.dumps({'response_id': response_id})}\n\n"
    last_sent = loop.time()
    while True:
        for event in batch:
            yield _frame(event)
            last_sent = loop.time()
            seq = event.seq
            if event.event.get("type") == _TERMINAL_EVENT:
                yield end
                return
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
