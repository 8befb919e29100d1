"""The `claude` engine: a streaming Messages API loop over one identity's Omni tools.

Written by hand rather than with the SDK's tool runner, which runs a turn's tools one after another and
knows nothing of per-user sessions. One turn: stream Claude's reply (text and thinking go
out as they arrive), then run every `tool_use` of the reply at the same time, each with its deadline, and
send all results back in one user message. The loop ends when Claude answers without tools, or at
`max_turns`.

Whatever stops a run (an answer, an API error, cancellation), the transcript it leaves is valid: every
`tool_use` has its `tool_result`, and the conversation is saved after each turn, so a process that dies
half-way leaves something `repair_transcript` can mend.

Stream integrity: a turn counts only once its stream reached `message_stop`. A stream that drops, stalls
(no event within `stream_idle_timeout`), sends a frame the SDK cannot parse, ends early, or is ended by a
retryable `event: error` frame (overloaded mid-stream) is a broken turn:
nothing of it is kept, and none of its `tool_use`s runs. While the user saw nothing of that turn it is asked
again, with backoff, up to the client's `max_retries` times; otherwise the answer ends `errored` with a
retryable `stream_interrupted` error, and the text already shown comes back as a `TextPart(partial=True)`
followed by a note saying it was cut off.

Prompt caching: the system prompt, the tool list (marker on its last tool) and the conversation so far
(a marker on the last block) are cached, so from the second turn on most input tokens are cache reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anthropic
import httpx2
from anthropic.lib.streaming import AsyncMessageStream, ParsedMessageStreamEvent
from anthropic.types import CacheControlEphemeralParam

from omni_bridge.agent._telemetry import llm_call
from omni_bridge.agent.conversation import repair_transcript
from omni_bridge.agent.engines.chart_pages import ChartPages
from omni_bridge.agent.engines.followups import FollowUpFilter, split_follow_ups
from omni_bridge.agent.engines.provenance import provenance_parts
from omni_bridge.agent.engines.run import Run
from omni_bridge.agent.events import (
    AssistantMessage,
    ChartPart,
    ChartReady,
    ContentPart,
    ErrorEvent,
    Event,
    FinalMessage,
    StructuredActionPart,
    SuggestedActions,
    SuggestedActionsPart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UsageReport,
)
from omni_bridge.exceptions import ErrorType, ForeignErrorCode, is_error_type
from omni_bridge.tools import QueryProvenance, ShapedResult, ToolOutcome

__all__ = ["ClaudeEngine"]

log = logging.getLogger("omni_bridge.agent")

_CACHE: CacheControlEphemeralParam = {"type": "ephemeral"}
_INTERRUPTED = "The tool call was cancelled before it finished."
_BACKOFF_CAP_SECONDS = 8.0
# `event: error` types that say "try again later" (the API's 429, 500, 504 and 529 kinds).
_RETRYABLE_FRAMES: frozenset[ErrorType] = frozenset(
    {"rate_limit_error", "api_error", "timeout_error", "overloaded_error"}
)


class _StreamBroken(Exception):
    """A turn's stream ended without `message_stop`; `shown` is the text of it the user already saw.

    `error_type` is `stream_interrupted`, or the API's own type when it ended the stream with a retryable
    `event: error` frame (e.g. `overloaded_error`).
    """

    def __init__(self, reason: str, error_type: ErrorType | ForeignErrorCode = "stream_interrupted") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type
        self.shown = ""


@dataclass
class _Answer:
    """What the run gathered for the final message."""

    charts: list[ChartPart] = field(default_factory=list)
    pages: ChartPages = field(default_factory=ChartPages)
    chat_url: str | None = None
    usage: Usage = field(default_factory=Usage)
    provenance: list[QueryProvenance] = field(default_factory=list)


class ClaudeEngine:
    """Answers with Claude, calling Omni's tools through one identity's `Toolset`.

    Args:
        client: a shared `AsyncAnthropic` (its retries cover 429, 529 and 5xx: set `max_retries` there).
        model: the Claude model name.
        system: the system prompt (see `omni_bridge.prompts.system_prompt`), or a function of the names of the
            tools the run's user has (tool lists follow the user's role), so it names only tools they have.
        max_tokens: `max_tokens` of one request.
        max_turns: requests per answer at most; a run that would need more ends with a message saying so.
        tool_timeout: deadline of one tool call, in seconds (`None`: the pool's default).
        stream_idle_timeout: the longest wait for the next event of a stream, in seconds (`None`: the client's
            read timeout). The SDK's own timeout does not see a stream kept open by pings.
        retry_base_seconds: the first backoff before a broken stream is asked again; it doubles (with
            jitter) on each retry, up to 8 s. Retries per turn: the client's `max_retries`.
    """

    name: Literal["claude"] = "claude"

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str,
        system: str | Callable[[list[str]], str],
        max_tokens: int = 4096,
        max_turns: int = 8,
        tool_timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        retry_base_seconds: float = 0.25,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        if retry_base_seconds < 0 or (stream_idle_timeout is not None and stream_idle_timeout <= 0):
            raise ValueError("retry_base_seconds must not be negative, stream_idle_timeout must be positive")
        self._client = client
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self.max_turns = max_turns
        self.tool_timeout = tool_timeout
        self.stream_idle_timeout = stream_idle_timeout if stream_idle_timeout is not None else _read_timeout(client)
        self.retry_base_seconds = retry_base_seconds

    def _system_text(self, tools: Sequence[Mapping[str, Any]]) -> str:
        return self.system if isinstance(self.system, str) else self.system([str(t["name"]) for t in tools])

    def __repr__(self) -> str:
        return f"<ClaudeEngine model={self.model!r} max_turns={self.max_turns}>"

    async def run(self, run: Run) -> AsyncGenerator[Event, None]:
        """Answer `run.question`, yielding events; the last one is a `FinalMessage` unless cancelled.

        Raises:
            asyncio.CancelledError: the run was cancelled; the transcript was completed and saved first.
        """
        if run.toolset is None:
            raise ValueError("the claude engine needs a toolset")
        conversation = run.conversation
        conversation.messages = repair_transcript(conversation.messages)
        conversation.messages.append({"role": "user", "content": [{"type": "text", "text": run.question}]})
        answer = _Answer()
        await run.checkpoint()
        for turn in range(1, self.max_turns + 1):
            try:
                message = None
                # `aclosing`: if our consumer stops early, the stream is closed now, not when collected.
                async with contextlib.aclosing(self._reply(run)) as replies:
                    async for item in replies:
                        if isinstance(item, anthropic.types.Message):
                            message = item
                        else:
                            yield item
                assert message is not None
            except _StreamBroken as exc:
                async for event in self._broken(run, answer, exc):
                    yield event
                return
            except anthropic.APIError as exc:
                async for event in self._failed(run, answer, exc):
                    yield event
                return
            conversation.messages.append({"role": "assistant", "content": _blocks(message)})
            used = run.ledger.add(conversation.id, message.usage)
            answer.usage = answer.usage + used.usage
            conversation.usage = conversation.usage + used.usage
            yield UsageReport(**run.stamp(), turn=used, total=run.ledger.total(conversation.id))

            tool_uses = [block for block in message.content if block.type == "tool_use"]
            if message.stop_reason != "tool_use" or not tool_uses:
                # Claude answered (end_turn), ran out of tokens (max_tokens) or declined (refusal): all final.
                log.debug("run %s ended: %s after %d turn(s)", run.response_id, message.stop_reason, turn)
                await run.checkpoint()
                for event in self._final(run, answer, _text_of(message), message.stop_reason):
                    yield event
                return
            async with contextlib.aclosing(self._run_tools(run, tool_uses, answer)) as tool_events:
                async for event in tool_events:
                    yield event
            await run.checkpoint()
        # Claude still wanted tools after max_turns requests: stop, saying so; the transcript is complete.
        log.debug("run %s stopped at max_turns=%d", run.response_id, self.max_turns)
        note = (
            f"I stopped after {self.max_turns} steps without a final answer. "
            "Try a narrower question, or ask me to continue."
        )
        yield ErrorEvent(**run.stamp(), error_type="max_turns", message=note, retryable=False)
        for event in self._final(run, answer, note, "max_turns", outcome="errored"):
            yield event

    async def _reply(self, run: Run) -> AsyncGenerator[Event | anthropic.types.Message, None]:
        """One turn: `_stream`, asked again while a broken stream had shown the user nothing of the turn."""
        retries = self._client.max_retries
        for attempt in itertools.count():
            shown: list[str] = []
            reached_user = False
            try:
                async with contextlib.aclosing(self._stream(run)) as replies:
                    async for item in replies:
                        if isinstance(item, TextDelta | ThinkingDelta):
                            reached_user = True
                            if isinstance(item, TextDelta):
                                shown.append(item.text)
                        yield item
                return
            except _StreamBroken as exc:
                if reached_user or attempt >= retries:
                    log.warning("run %s: the Messages API stream broke off (%s)", run.response_id, exc.reason)
                    exc.shown = "".join(shown)
                    raise
                log.info("run %s: the Messages API stream broke off (%s); asking again", run.response_id, exc.reason)
            # Exponential backoff with jitter, so that many runs cut off at once do not come back at once.
            delay = min(_BACKOFF_CAP_SECONDS, self.retry_base_seconds * 2**attempt)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _stream(self, run: Run) -> AsyncGenerator[Event | anthropic.types.Message, None]:
        """One request: text and thinking deltas as they come, then the whole message.

        Raises:
            _StreamBroken: the stream ended without `message_stop` (the message is not yielded).
        """
        assert run.toolset is not None
        tools = await run.toolset.definitions()
        if tools:
            tools = [*tools[:-1], {**tools[-1], "cache_control": _CACHE}]
        follow_ups = FollowUpFilter()
        async with (
            llm_call(self.model) as sampled,
            self._client.messages.stream(
                model=self.model,
                max_tokens=self.max_tokens,
                system=[{"type": "text", "text": self._system_text(tools), "cache_control": _CACHE}],
                tools=tools,  # type: ignore[arg-type]  # our dicts are ToolParam-shaped (tested against the SDK types)
                messages=_with_cache_marker(run.conversation.messages),  # type: ignore[arg-type]
            ) as stream,
        ):
            stopped = False
            async for event in _events(stream, self.stream_idle_timeout):
                if event.type == "text":
                    shown = follow_ups.feed(event.text)
                    if shown:
                        yield TextDelta(**run.stamp(), text=shown)
                elif event.type == "thinking":
                    yield ThinkingDelta(**run.stamp(), text=event.thinking)
                elif event.type == "message_stop":
                    stopped = True
            if not stopped:  # the SDK accepts a stream that just ends; its message would be a fragment
                raise _StreamBroken("the stream ended before the message did")
            rest = follow_ups.flush()
            if rest:
                yield TextDelta(**run.stamp(), text=rest)
            message = await stream.get_final_message()
            sampled.finished(message)  # latency and token metrics (the SDK makes the request's span)
            yield message

    async def _run_tools(self, run: Run, tool_uses: list[Any], answer: _Answer) -> AsyncGenerator[Event, None]:
        """Run a turn's tool calls concurrently; always append one result per call to the transcript."""
        assert run.toolset is not None
        toolset = run.toolset
        results: dict[str, dict[str, Any]] = {}
        tasks: dict[asyncio.Task[ToolOutcome], Any] = {}
        for block in tool_uses:
            yield ToolCallStarted(**run.stamp(), call_id=block.id, tool=block.name, arguments=_json_dict(block.input))
            task = asyncio.create_task(
                toolset.call(block.name, block.input, deadline=self.tool_timeout, call_id=block.id)
            )
            tasks[task] = block
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    block, outcome = tasks[task], task.result()
                    results[block.id] = outcome.tool_result_block(block.id)
                    for event in _tool_events(run, block, outcome, answer):
                        yield event
                    async for event in answer.pages.after_tool_call(run, outcome):  # Omni's page of a finished job
                        yield event
        finally:
            # Cancelled (or a tool raised): stop the others, and still answer every tool_use.
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
            interrupted = {"type": "tool_result", "is_error": True, "content": _INTERRUPTED}
            blocks = [results.get(block.id) or {**interrupted, "tool_use_id": block.id} for block in tool_uses]
            run.conversation.messages.append({"role": "user", "content": blocks})
            if len(results) < len(tool_uses):
                await asyncio.shield(run.checkpoint())

    async def _failed(self, run: Run, answer: _Answer, exc: anthropic.APIError) -> AsyncIterator[Event]:
        status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else None
        error_type = _error_type(exc)
        retryable = _retryable(exc)
        log.warning("Messages API failed for run %s: %s %s", run.response_id, status, error_type)
        message = f"The language model is unavailable ({error_type}{f', HTTP {status}' if status else ''})."
        message += " Please try again in a moment." if retryable else ""
        await run.checkpoint()
        yield ErrorEvent(**run.stamp(), error_type=error_type, message=message, retryable=retryable)
        for event in self._final(run, answer, message, error_type, outcome="errored"):
            yield event

    async def _broken(self, run: Run, answer: _Answer, exc: _StreamBroken) -> AsyncIterator[Event]:
        """End the answer after a stream broke off: errored, retryable, with what was shown marked partial."""
        message = f"The language model's answer broke off ({exc.reason}). Please try again."
        await run.checkpoint()
        yield ErrorEvent(**run.stamp(), error_type=exc.error_type, message=message, retryable=True)
        if exc.shown.strip():
            note = "\n\n(This answer is incomplete: the language model's answer broke off. Please try again.)"
            events = self._final(run, answer, note, exc.error_type, outcome="errored", partial=exc.shown)
        else:
            events = self._final(run, answer, message, exc.error_type, outcome="errored")
        for event in events:
            yield event

    def _final(
        self,
        run: Run,
        answer: _Answer,
        text: str,
        reason: str | None,
        *,
        outcome: Literal["completed", "errored", "canceled"] = "completed",
        partial: str | None = None,
    ) -> list[Event]:
        """The closing events; `partial` is text already shown of a turn that broke off (kept apart from `text`)."""
        body, buttons = split_follow_ups(text)
        if reason == "max_tokens":
            body += "\n\n(The answer was cut off at the length limit.)"
        parts: list[ContentPart] = [TextPart(text=partial, partial=True)] if partial else []
        parts += [TextPart(text=body)] if body else []
        parts.extend(answer.charts[-1:])
        parts.extend(answer.pages.parts)
        parts.extend(provenance_parts(answer.provenance))
        events: list[Event] = []
        if buttons:
            parts.append(SuggestedActionsPart(actions=buttons))
            events.append(SuggestedActions(**run.stamp(), actions=buttons))
        if answer.chat_url:
            parts.append(StructuredActionPart(action="open_in_omni", url=answer.chat_url))
        message = AssistantMessage(
            id=run.response_id, conversation_id=run.conversation.id, parts=parts, outcome=outcome, usage=answer.usage
        )
        events.append(FinalMessage(**run.stamp(), message=message))
        return events


async def _events(
    stream: AsyncMessageStream[Any], idle_timeout: float | None
) -> AsyncIterator[ParsedMessageStreamEvent[Any]]:
    """The SDK stream's events, each within `idle_timeout`; any way the stream breaks becomes `_StreamBroken`.

    An `event: error` frame stays the API's own status error. Everything else the SDK raises while reading is
    a broken stream: httpx2 transport errors (a dropped connection: `RemoteProtocolError`, `ReadError`; a
    silent one: `ReadTimeout`), `json.JSONDecodeError` on a malformed `data:` line, and whatever its snapshot
    accumulation raises on events that do not fit together (`ValueError`, `RuntimeError`, `IndexError`, ...).
    """
    events = stream.__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                event = await anext(events)
        except StopAsyncIteration:
            return
        except anthropic.APIStatusError as exc:
            # An `event: error` frame. The request itself succeeded (the SDK retries failed requests before
            # the stream opens), so a retryable error here breaks the turn like a dropped connection would.
            # Its status is the stream's own 200, so the frame's error type tells whether it is worth retrying.
            if _error_type(exc) not in _RETRYABLE_FRAMES:
                raise
            raise _StreamBroken(f"the API ended the stream with {_error_type(exc)}", _error_type(exc)) from exc
        except TimeoutError:
            raise _StreamBroken(f"no event for {idle_timeout:g} s") from None
        except (httpx2.TimeoutException, anthropic.APITimeoutError) as exc:
            raise _StreamBroken(f"the stream stalled: {type(exc).__name__}") from exc
        except (httpx2.TransportError, anthropic.APIConnectionError) as exc:
            raise _StreamBroken(f"the connection dropped: {type(exc).__name__}") from exc
        except Exception as exc:
            raise _StreamBroken(f"a malformed event arrived: {type(exc).__name__}") from exc
        yield event


def _retryable(exc: anthropic.APIError) -> bool:
    """Worth asking again later: a connection problem, a timeout, a conflict, rate limiting or a server error."""
    status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else None
    return isinstance(exc, anthropic.APIConnectionError) or status in (408, 409, 429) or (status or 0) >= 500


def _read_timeout(client: anthropic.AsyncAnthropic) -> float | None:
    """The client's read timeout in seconds (`timeout=` may be a number or an `httpx2.Timeout`)."""
    timeout: object = client.timeout
    read = getattr(timeout, "read", timeout)
    return float(read) if isinstance(read, int | float) else None


def _tool_events(run: Run, block: Any, outcome: ToolOutcome, answer: _Answer) -> list[Event]:
    shaped: ShapedResult = outcome.result
    events: list[Event] = [
        ToolCallFinished(
            **run.stamp(),
            call_id=block.id,
            tool=block.name,
            is_error=shaped.is_error,
            summary=shaped.summary,
            result_id=shaped.artifact_id,
            row_count=shaped.row_count,
            elapsed_ms=outcome.elapsed_ms,
        )
    ]
    if shaped.chart is not None:
        answer.charts.append(ChartPart(chart=shaped.chart, result_id=shaped.artifact_id))
        events.append(ChartReady(**run.stamp(), chart=shaped.chart, result_id=shaped.artifact_id))
    if shaped.omni_chat_url:
        answer.chat_url = shaped.omni_chat_url
    if shaped.provenance is not None:
        answer.provenance.append(shaped.provenance)
    return events


def _blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    """The reply's content as plain JSON blocks, fit to send back and to store."""
    return [block.model_dump(mode="json", exclude_none=True) for block in message.content]


def _text_of(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _with_cache_marker(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The transcript with a cache marker on its last block (the stored transcript stays unmarked)."""
    if not messages:
        return messages
    last = copy.copy(messages[-1])
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if blocks:
        blocks[-1] = {**blocks[-1], "cache_control": _CACHE}
    last["content"] = blocks
    return [*messages[:-1], last]


def _json_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"input": value}


def _error_type(exc: anthropic.APIError) -> ErrorType | ForeignErrorCode:
    """The API's own `error.type` (passed on as it came), else what failed: a timeout, the connection, the API."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    kind = error.get("type") if isinstance(error, dict) else None
    if isinstance(kind, str) and kind != "error":
        return kind if is_error_type(kind) else ForeignErrorCode(kind)
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection_error"
    return "api_error"
