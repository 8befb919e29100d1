"""The thread-centric API under `/v1`: threads, messages, responses, cancel and feedback.

A thread is a conversation of one end user; posting a message starts a response, which runs in the background
on this worker and is polled (`GET /v1/responses/{id}`: status, progress, parts so far; on the worker that
runs it, as it stands in memory, see `ResponseRunner.snapshot`) or followed as server-sent events (`_sse.py`).
Each handler authenticates first (401/400 before anything else), then parses its input into a pydantic model
(`extra="forbid"`: an unknown field is a 400), then asks the store, which only ever finds records of the
caller's owner: another user's record is a 404, never a 403.
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from omni_bridge.agent.events import TextPart
from omni_bridge.server._envelope import ApiError, ok, read_json
from omni_bridge.server._openapi import ApiRoute, Operation, Param
from omni_bridge.server._sse import events_operation, stream_events
from omni_bridge.server._tenants import resolve_acting_user
from omni_bridge.server._threads_models import (
    ID_PATTERN,
    CreateThread,
    FeedbackIn,
    MessageOut,
    MessagePosted,
    PostMessage,
    ResponseOut,
    ThreadCreated,
    ThreadOut,
    id_param,
    user_header,
)
from omni_bridge.stores import Feedback, MessageRecord, ResponseRecord, ThreadRecord

if TYPE_CHECKING:
    from omni_bridge.server._service import Service

__all__ = ["CANCEL_WAIT_SECONDS", "parse_response_id", "threads_routes"]

CANCEL_WAIT_SECONDS = 3.0
"""How long a cancel waits for a run on this worker to stop before it answers."""


_ID = re.compile(ID_PATTERN)


def _path_id(request: Request, name: str, what: str) -> str:
    value = str(request.path_params[name])
    if not _ID.fullmatch(value):
        raise ApiError(400, "invalid_request", f"{value[:40]!r} is not a valid {what} id")
    return value


def parse_response_id(value: str) -> str:
    """A response id in its stored form (a lowercase UUID); 400 when it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(400, "invalid_request", f"{value[:40]!r} is not a valid response id (a UUID)") from None


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # The length check first: `int()` refuses strings of more than 4,300 digits with a ValueError.
    digits = raw.strip()
    if not digits.isdigit() or len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise ApiError(400, "invalid_request", f"`{name}` must be a whole number from {low} to {high}")
    return int(digits)


def _query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(400, "invalid_request", f"`{name}` must be an ISO 8601 time with a time zone")
    return moment


# --- handlers ---------------------------------------------------------------------------------------------


class _Threads:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def create_thread(self, request: Request) -> Response:
        service = self.service
        owner = await service.authenticate(request)
        body = await read_json(request, CreateThread)
        service.check_accepting()
        engine = service.engine_for(body.engine)
        # Omni must know the end user (or the profile create them) before anything is stored for them.
        user = await resolve_acting_user(service, owner, body.user_profile)
        text = body.message.text
        thread = ThreadRecord(owner=owner, engine=engine, title=body.title or _title_of(text))
        message = MessageRecord(thread_id=thread.id, owner=owner, role="user", parts=[TextPart(text=text)])
        # Stored already leased to this worker, which runs it at once: no claim to write before the engine starts.
        response = service.runner.leased(
            ResponseRecord(thread_id=thread.id, owner=owner, user_message_id=message.id, prompt=text)
        )
        async with service.admission.admit(owner):  # 429 beyond the caps, before anything is stored
            await service.store.create_thread(thread, message, response)
        service.runner.start(response, user=user, engine=engine)
        created = ThreadCreated(thread_id=thread.id, response_id=response.id, user_message_id=message.id)
        return ok(created, status=201)

    async def list_threads(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        limit = _query_int(request, "limit", 20, 1, 100)
        before = _query_time(request, "before")
        threads = await self.service.store.list_threads(owner, limit=limit, before=before)
        more = len(threads) == limit
        next_before = threads[-1].updated_at.isoformat() if more and threads else None
        return ok([ThreadOut.of(t) for t in threads], metadata={"next_before": next_before})

    async def get_thread(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        thread = await self.service.store.get_thread(owner, _path_id(request, "thread_id", "thread"))
        if thread is None:
            raise _missing("thread")
        return ok(ThreadOut.of(thread))

    async def post_message(self, request: Request) -> Response:
        service = self.service
        owner = await service.authenticate(request)
        thread_id = _path_id(request, "thread_id", "thread")
        body = await read_json(request, PostMessage)
        service.check_accepting()
        existing = await service.store.get_thread(owner, thread_id)
        if existing is None:
            raise _missing("thread")
        service.engine_for(existing.engine)  # a thread of an engine this worker lacks: 400 now, not a failed run
        user = await resolve_acting_user(service, owner)
        text = body.message.text
        message = MessageRecord(thread_id=thread_id, owner=owner, role="user", parts=[TextPart(text=text)])
        response = service.runner.leased(
            ResponseRecord(thread_id=thread_id, owner=owner, user_message_id=message.id, prompt=text)
        )
        async with service.admission.admit(owner):  # 429 beyond the caps, before anything is stored
            thread = await service.store.post_message(message, response)
        if thread is None:
            raise ApiError(
                409,
                "response_active",
                f"the thread's response {existing.current_response_id} is still running; "
                "wait for it to finish or cancel it, then post again",
            )
        service.runner.start(response, user=user, engine=thread.engine)
        return ok(MessagePosted(response_id=response.id, user_message_id=message.id), status=201)

    async def list_messages(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        messages = await self.service.store.list_messages(owner, _path_id(request, "thread_id", "thread"))
        if messages is None:
            raise _missing("thread")
        return ok([MessageOut.of(m) for m in messages])

    async def current_response(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        thread = await self.service.store.get_thread(owner, _path_id(request, "thread_id", "thread"))
        if thread is None:
            raise _missing("thread")
        response = None
        if thread.current_response_id is not None:
            response = self.service.runner.snapshot(owner, thread.current_response_id)
            if response is None:
                response = await self.service.store.get_response(owner, thread.current_response_id)
        if response is None:
            raise _missing("response")
        return ok(ResponseOut.of(response))

    async def get_response(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        response_id = parse_response_id(str(request.path_params["response_id"]))
        # Running here: as it stands now, without waiting for the runner's next write.
        response = self.service.runner.snapshot(owner, response_id)
        if response is None:
            response = await self.service.store.get_response(owner, response_id)
        if response is None:
            raise _missing("response")
        return ok(ResponseOut.of(response))

    async def cancel_response(self, request: Request) -> Response:
        service = self.service
        owner = await service.authenticate(request)
        response_id = parse_response_id(str(request.path_params["response_id"]))
        response = await service.store.request_cancel(owner, response_id, by=owner.user)
        if response is None:
            raise _missing("response")
        if response.status == "running" and await service.runner.cancel(response_id, wait=CANCEL_WAIT_SECONDS):
            response = await service.store.get_response(owner, response_id) or response
        return ok(ResponseOut.of(response))

    async def get_message(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        message = await self.service.store.get_message(owner, _path_id(request, "message_id", "message"))
        if message is None:
            raise _missing("message")
        return ok(MessageOut.of(message))

    async def give_feedback(self, request: Request) -> Response:
        store = self.service.store
        owner = await self.service.authenticate(request)
        message_id = _path_id(request, "message_id", "message")
        body = await read_json(request, FeedbackIn)
        message = await store.get_message(owner, message_id)
        if message is None:
            raise _missing("message")
        if message.role != "assistant":
            raise ApiError(400, "invalid_request", "feedback is given on assistant messages, not on the user's own")
        updated = await store.set_feedback(owner, message_id, Feedback(rating=body.rating, comment=body.comment))
        if updated is None:
            raise _missing("message")
        return ok(MessageOut.of(updated))

    async def events(self, request: Request) -> Response:
        owner = await self.service.authenticate(request)
        response_id = parse_response_id(str(request.path_params["response_id"]))
        return await stream_events(self.service, request, owner, response_id)


def _missing(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what} for this user")


def _title_of(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79] + "…"


def threads_routes(service: Service) -> list[BaseRoute]:
    """The `/v1` routes, each described for OpenAPI."""
    api = _Threads(service)
    user = user_header()
    thread = (user, id_param("thread_id", "thread"))
    response = (user, id_param("response_id", "response"))
    message = (user, id_param("message_id", "message"))
    limit = Param(
        "limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "Threads per page (20).", example=20
    )
    before = Param("before", "query", {"type": "string", "format": "date-time"}, "Only threads updated before.")
    operation = functools.partial(Operation, tag="threads")
    return [
        ApiRoute(
            operation(
                method="POST", path="/v1/threads", operation_id="createThread",
                summary="Start a thread with a first message", params=(user,), body=CreateThread, status=201,
                data=ThreadCreated, errors=(403, 422, 429, 502, 503),
            ),
            api.create_thread,
        ),
        ApiRoute(
            operation(
                method="GET", path="/v1/threads", operation_id="listThreads",
                summary="The end user's threads, most recently updated first", params=(user, limit, before),
                data=ThreadOut, many=True,
            ),
            api.list_threads,
        ),
        ApiRoute(
            operation(
                method="GET", path="/v1/threads/{thread_id}", operation_id="getThread", summary="One thread",
                params=thread, data=ThreadOut, errors=(404,),
            ),
            api.get_thread,
        ),
        ApiRoute(
            operation(
                method="POST", path="/v1/threads/{thread_id}/messages", operation_id="postMessage",
                summary="Ask the next question of a thread", params=thread, body=PostMessage, status=201,
                data=MessagePosted, errors=(404, 409, 422, 429, 502, 503),
            ),
            api.post_message,
        ),
        ApiRoute(
            operation(
                method="GET", path="/v1/threads/{thread_id}/messages", operation_id="listMessages",
                summary="The thread's messages, oldest first", params=thread, data=MessageOut, many=True,
                errors=(404,),
            ),
            api.list_messages,
        ),
        ApiRoute(
            operation(
                method="GET", path="/v1/threads/{thread_id}/response", operation_id="getCurrentResponse",
                summary="The thread's latest response", params=thread, data=ResponseOut, errors=(404,),
            ),
            api.current_response,
        ),
        ApiRoute(
            operation(
                method="GET", path="/v1/responses/{response_id}", operation_id="getResponse",
                summary="Poll a response: status, progress and the parts so far", params=response,
                data=ResponseOut, errors=(404,),
            ),
            api.get_response,
        ),
        ApiRoute(
            operation(
                method="POST", path="/v1/responses/{response_id}/cancel", operation_id="cancelResponse",
                summary="Stop a response (from any worker)", params=response, data=ResponseOut, errors=(404,),
            ),
            api.cancel_response,
        ),
        ApiRoute(events_operation(*response), api.events),
        ApiRoute(
            operation(
                method="GET", path="/v1/messages/{message_id}", operation_id="getMessage", summary="One message",
                params=message, data=MessageOut, errors=(404,),
            ),
            api.get_message,
        ),
        ApiRoute(
            operation(
                method="POST", path="/v1/messages/{message_id}/feedback", operation_id="giveFeedback",
                summary="Rate an assistant message", params=message, body=FeedbackIn, data=MessageOut,
                errors=(404,),
            ),
            api.give_feedback,
        ),
    ]  # fmt: skip
