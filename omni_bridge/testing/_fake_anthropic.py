"""`FakeAnthropic`: a scripted Messages API on loopback that the real `anthropic` SDK talks to unchanged.

It is the boundary fake for everything that calls Claude: tests point `AsyncAnthropic(base_url=...)` at it
instead of patching the SDK, so retries, streaming, tool-use parsing and cache accounting run through the
SDK's own code. Answers come from a script of replies, then from a responder function; stream faults
(`StreamFault`) break streamed answers after their headers, independently of which reply they carry.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi, serve_asgi_in_thread
from omni_bridge.testing._capture import CapturedRequest, ReplyUsage, mask_headers
from omni_bridge.testing._exchange import Exchange, Inflight
from omni_bridge.testing._faults import StreamFault, faulty_sse, install_drop_log_filter
from omni_bridge.testing._replies import ErrorReply, Reply, error_reply
from omni_bridge.testing._tokens import PromptCache, count_tokens
from omni_bridge.testing._wire import content_blocks, message_body, stream_frames

__all__ = ["MESSAGES_PATH", "FakeAnthropic", "Responder"]

MESSAGES_PATH = "/v1/messages"

Responder = Callable[[CapturedRequest], Reply | ErrorReply | Awaitable[Reply | ErrorReply]]
"""Decides the answer to a request once the script is used up; may be sync or async."""

logger = logging.getLogger(__name__)


@dataclass
class _Due:
    """A queued stream fault and how many more streamed answers it breaks (`None`: all of them)."""

    fault: StreamFault
    left: int | None


class FakeAnthropic:
    """A fake Anthropic Messages API: `POST /v1/messages`, JSON or SSE, with scripted answers.

    Each request is answered by the next reply of the script (`*script`, `add()`); once the script is used
    up, by `responder(request)`; with neither, by a 400 that says so. Every request is recorded in
    `requests`, auth headers masked.

    Stream faults (`faults`, `add_fault()`) are a queue of their own, like llmock's: each streamed answer
    takes the first fault still due (`times` of them, or every one with `times=None`), and a faulted
    answer still used up its reply, so script one reply per attempt (a responder answers retries anew).
    The fault that struck is in `CapturedRequest.fault`, and the exchange ends `faulted` (a stall that
    passes leaves the outcome to what follows).

    Args:
        *script: Replies (`text_reply`, `tool_use_reply`, `error_reply`, ...) used in order, one per request.
        responder: Answers requests after the script, like pydantic-ai's `FunctionModel`. It runs on the
            server's loop (a background thread's, with `run_in_thread()`).
        api_keys: Keys to accept. `None` accepts any non-empty key; a missing key always gets a 401.
        min_cacheable_tokens: Prefixes shorter than this are never cached (see `PromptCache`).
        faults: Stream faults for the streamed answers to come, in order.

    Example:
        ```python
        fake = FakeAnthropic(text_reply("Hello!"))
        async with fake.serve() as url:
            client = AsyncAnthropic(api_key="test-key", base_url=url)
            message = await client.messages.create(model="claude-sonnet-5-5", max_tokens=64, messages=[...])
        ```

        Break streams: drop the first one inside its text, then stall the next one until the client gives up.

        ```python
        fake = FakeAnthropic(
            responder=lambda request: text_reply("West leads with 1.2M."),
            faults=[StreamFault("disconnect", after_events=4), StreamFault("stall", after_events=2)],
        )
        fake.add_fault(StreamFault("truncate", after_events=5, times=None))  # every stream after those two
        async with fake.serve() as url, AsyncAnthropic(api_key="k", base_url=url) as client:
            with pytest.raises(httpx2.RemoteProtocolError):  # the SDK does not retry a stream cut mid-body
                async with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
                    await stream.get_final_message()
        assert fake.requests[0].fault == StreamFault("disconnect", after_events=4)
        assert fake.requests[0].outcome == "faulted"
        ```
        Kinds: `disconnect` (the connection closes mid-body), `truncate` (the body ends cleanly without
        `message_stop`: the SDK returns a fragment without complaint), `malformed` (one `data:` line of
        cut-off JSON), `stall` (`stall_seconds`, or `None` for as long as the client waits).
    """

    def __init__(
        self,
        *script: Reply | ErrorReply,
        responder: Responder | None = None,
        api_keys: Collection[str] | None = None,
        min_cacheable_tokens: int = 0,
        faults: Iterable[StreamFault] = (),
    ) -> None:
        self._script: deque[Reply | ErrorReply] = deque(script)
        self._faults: deque[_Due] = deque()
        self.add_fault(*faults)
        install_drop_log_filter()
        self._responder = responder
        self._api_keys = frozenset(api_keys) if api_keys is not None else None
        self.cache = PromptCache(min_cacheable_tokens)
        self.requests: list[CapturedRequest] = []
        self.url: str | None = None
        self._message_ids = itertools.count(1)
        self._tool_ids = itertools.count(1)
        self._inflight = Inflight()
        self.app = Starlette(
            routes=[Route(MESSAGES_PATH, self._messages, methods=["POST"])],
            exception_handlers={HTTPException: _http_error},
        )

    def __repr__(self) -> str:
        return f"<FakeAnthropic url={self.url!r} requests={len(self.requests)} pending_replies={len(self._script)}>"

    def add(self, *replies: Reply | ErrorReply) -> None:
        """Append replies to the script."""
        self._script.extend(replies)

    @property
    def pending_replies(self) -> int:
        """Scripted replies not used yet."""
        return len(self._script)

    def add_fault(self, *faults: StreamFault) -> None:
        """Queue stream faults for the streamed answers to come (see `StreamFault`)."""
        self._faults.extend(_Due(fault, fault.times) for fault in faults)

    @property
    def pending_faults(self) -> list[StreamFault]:
        """Stream faults still due, in order (a fault with `times=None` stays here)."""
        return [due.fault for due in self._faults]

    def _next_fault(self) -> StreamFault | None:
        if not self._faults:
            return None
        due = self._faults[0]
        if due.left is not None:
            due.left -= 1
            if due.left == 0:
                self._faults.popleft()
        return due.fault

    # --- serving -----------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on the running loop; yields the base URL to pass as `AsyncAnthropic(base_url=...)`."""
        async with serve_asgi(self.app, host, port) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None
                self._inflight.cancel_all()

    @contextlib.contextmanager
    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve from a background thread with its own loop (for sync code and session fixtures)."""
        with serve_asgi_in_thread(self.app, host, port) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None
                self._inflight.cancel_all()

    # --- the endpoint ------------------------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        raw = await request.body()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        captured = CapturedRequest(
            index=len(self.requests),
            path=request.url.path,
            body=body,
            headers=mask_headers(request.headers),
            retry_count=_retry_count(request.headers.get("x-stainless-retry-count")),
            stream=body.get("stream") is True,
        )
        self.requests.append(captured)
        request_id = f"req_fake_{captured.index + 1:06d}"

        key = _api_key(request.headers.get("authorization", ""), request.headers.get("x-api-key", ""))
        if key is None:
            return self._error(captured, request_id, error_reply(401, message="x-api-key header is required"))
        if self._api_keys is not None and key not in self._api_keys:
            return self._error(captured, request_id, error_reply(401))
        if problem := _invalid(parsed):
            return self._error(captured, request_id, error_reply(400, message=problem))

        reply = await self._next_reply(captured)
        if isinstance(reply, ErrorReply):
            return self._error(captured, request_id, reply)
        if reply.stream_error is not None and not captured.stream:
            return self._error(captured, request_id, reply.stream_error)
        return self._answer(captured, request_id, reply)

    async def _next_reply(self, captured: CapturedRequest) -> Reply | ErrorReply:
        if self._script:
            return self._script.popleft()
        if self._responder is None:
            message = f"FakeAnthropic has no reply for request #{captured.index}: the script is used up"
            return error_reply(400, message=message, should_retry=False)
        try:
            reply = self._responder(captured)
            if inspect.isawaitable(reply):
                reply = await reply
            if not isinstance(reply, Reply | ErrorReply):
                raise TypeError(f"a responder must return a Reply or an ErrorReply, not {type(reply).__name__}")
        except Exception as exc:  # the test's responder failed: answer with it so the failure is visible
            logger.exception("FakeAnthropic responder failed on request #%d", captured.index)
            return error_reply(500, message=f"FakeAnthropic responder raised {exc!r}", should_retry=False)
        return reply

    def _answer(self, captured: CapturedRequest, request_id: str, reply: Reply) -> Response:
        model = str(captured.body["model"])
        blocks = content_blocks(reply, lambda: f"toolu_fake_{next(self._tool_ids):06d}")
        account = self.cache.account(captured.body)
        usage = ReplyUsage(
            input_tokens=account.input_tokens,
            output_tokens=reply.output_tokens if reply.output_tokens is not None else count_tokens(blocks),
            cache_creation_input_tokens=account.cache_creation_input_tokens,
            cache_read_input_tokens=account.cache_read_input_tokens,
            cache_creation_1h_input_tokens=account.cache_creation_1h_input_tokens,
        )
        message_id = f"msg_fake_{next(self._message_ids):06d}"
        captured.status, captured.usage = 200, usage
        headers = {"request-id": request_id}
        if captured.stream:
            frames = stream_frames(reply, blocks, message_id=message_id, model=model, usage=usage)
            fault = self._next_fault()

            def struck() -> None:
                captured.fault = fault

            return Exchange(
                faulty_sse(frames, reply.delay_seconds, fault, struck),
                status_code=200,
                headers={**headers, "cache-control": "no-cache"},
                media_type="text/event-stream",
                captured=captured,
                inflight=self._inflight,
                outcome="error" if reply.stream_error is not None else "completed",
            )
        body = message_body(reply, blocks, message_id=message_id, model=model, usage=usage)
        return Exchange(
            _once(json.dumps(body).encode()),
            status_code=200,
            headers=headers,
            media_type="application/json",
            captured=captured,
            inflight=self._inflight,
            outcome="completed",
            head_delay=reply.delay_seconds,
        )

    def _error(self, captured: CapturedRequest, request_id: str, error: ErrorReply) -> Response:
        captured.status = error.status
        captured._finish("error")
        return JSONResponse(error.body(request_id), error.status, headers={**error.headers(), "request-id": request_id})


async def _once(chunk: bytes) -> AsyncGenerator[bytes, None]:
    yield chunk


def _api_key(authorization: str, x_api_key: str) -> str | None:
    """The key from `authorization: Bearer <key>` (what SDK 2.10+ sends) or `x-api-key`."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return x_api_key.strip() or None


def _retry_count(header: str | None) -> int:
    try:
        return int(header) if header is not None else 0
    except ValueError:
        return 0


def _invalid(body: Any) -> str | None:
    """Why `body` is not a Messages request, checking only what the API requires; unknown keys are fine."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        return "max_tokens: Field required"
    if not isinstance(body.get("messages"), list):
        return "messages: Field required"
    return _unpaired_tool_blocks(body["messages"])


def _unpaired_tool_blocks(messages: list[Any]) -> str | None:
    """The API's 400 for a broken transcript: every `tool_use` needs a `tool_result` in the very next
    message, and every `tool_result` a `tool_use` in the message before."""
    previous_uses: set[str] = set()
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
        results = {str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"}
        if missing := sorted(previous_uses - results):
            return (
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                "next message."
            )
        if unexpected := sorted(results - previous_uses):
            return (
                f"messages.{index}: unexpected `tool_use_id` found in `tool_result` blocks: {', '.join(unexpected)}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        previous_uses = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
    # A trailing assistant `tool_use` is the turn being continued: nothing to pair it with yet.
    return None


def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    error = error_reply(status, message=exc.detail if isinstance(exc, HTTPException) else None)
    return JSONResponse(error.body("req_fake_000000"), status)
