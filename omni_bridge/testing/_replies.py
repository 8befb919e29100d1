"""What the fake model answers: scripted replies, error replies, and the helpers that build them.

Replies are plain frozen values, so one script can be reused across tests and a responder can build them
from what it was asked. The fake turns a reply into the exact wire shape of the Messages API (JSON or SSE),
which is why nothing here knows about HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ErrorReply",
    "Reply",
    "ReplyPart",
    "ReplyText",
    "ReplyThinking",
    "StopReason",
    "ToolCall",
    "error_reply",
    "stream_error_reply",
    "text_reply",
    "tool_use_reply",
]

StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal"]

MAX_DELAY_SECONDS = 60.0
"""Upper bound on `Reply.delay_seconds`: a forgotten delay must not turn into a hung test suite."""

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_STATUS_OF_TYPE = {error_type: status for status, (error_type, _message) in _ERROR_TYPES.items()}


@dataclass(frozen=True)
class ReplyText:
    """A `text` content block."""

    text: str


@dataclass(frozen=True)
class ReplyThinking:
    """A `thinking` content block (extended thinking), streamed as `thinking_delta`s then a `signature_delta`."""

    thinking: str
    signature: str | None = None
    """Opaque to clients; `None` derives a stable fake signature from the text."""


@dataclass(frozen=True)
class ToolCall:
    """A `tool_use` content block: the model asking the client to run tool `name` with `input`."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    """`None` lets the fake assign `toolu_fake_<n>`."""


ReplyPart = ReplyText | ReplyThinking | ToolCall


@dataclass(frozen=True, kw_only=True)
class ErrorReply:
    """An API error: HTTP `status` with the real body `{"type": "error", "error": {...}, "request_id": ...}`."""

    status: int
    error_type: str
    message: str
    retry_after_ms: int | None = None
    """Sent as `retry-after-ms` (and `retry-after` in whole seconds); the SDK waits this long before retrying."""
    should_retry: bool | None = None
    """Sent as `x-should-retry`, which overrides the SDK's own decision to retry."""

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"an error reply needs a 4xx or 5xx status, not {self.status}")
        if self.retry_after_ms is not None and not 0 <= self.retry_after_ms <= MAX_DELAY_SECONDS * 1000:
            raise ValueError(f"retry_after_ms must be between 0 and {MAX_DELAY_SECONDS * 1000:.0f}")

    def body(self, request_id: str) -> dict[str, Any]:
        """The JSON body the Messages API sends with this error."""
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}, "request_id": request_id}

    def headers(self) -> dict[str, str]:
        """The retry headers for this error."""
        headers: dict[str, str] = {}
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
            headers["retry-after"] = str(math.ceil(self.retry_after_ms / 1000))
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One assistant message, sent as JSON or, for `"stream": true`, as SSE frames."""

    content: tuple[ReplyPart, ...]
    stop_reason: StopReason | None = None
    """`None`: `"tool_use"` when the content holds a `ToolCall`, else `"end_turn"`."""
    delay_seconds: float = 0.0
    """Wait before every stream frame after `message_start` (before the body, for JSON). The wait ends early
    when the client disconnects or the fake stops serving."""
    stream_error: ErrorReply | None = None
    """Streamed: after the content blocks, send this as an `event: error` frame instead of `message_stop`.
    Not streamed: answer with this error instead of the message."""
    output_tokens: int | None = None
    """`None`: about a quarter of the content's JSON length, like the input count."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay_seconds must be between 0 and {MAX_DELAY_SECONDS:.0f}")

    @property
    def effective_stop_reason(self) -> StopReason:
        """The stop reason sent on the wire."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(part, ToolCall) for part in self.content) else "end_turn"


def text_reply(
    text: str,
    *,
    thinking: str | None = None,
    stop_reason: StopReason | None = None,
    delay_seconds: float = 0.0,
) -> Reply:
    """A reply holding one text block, optionally after a thinking block.

    Args:
        text: The answer text.
        thinking: Text of a `thinking` block sent before the answer.
        stop_reason: Overrides the default `"end_turn"`.
        delay_seconds: Wait before each stream frame (see `Reply.delay_seconds`).
    """
    parts: list[ReplyPart] = [] if thinking is None else [ReplyThinking(thinking)]
    parts.append(ReplyText(text))
    return Reply(content=tuple(parts), stop_reason=stop_reason, delay_seconds=delay_seconds)


def tool_use_reply(
    calls: ToolCall | Sequence[ToolCall],
    text: str | None = None,
    *,
    thinking: str | None = None,
    delay_seconds: float = 0.0,
) -> Reply:
    """A reply asking for one or more tool calls in the same turn (`stop_reason` `"tool_use"`).

    Args:
        calls: The `tool_use` blocks, in order.
        text: Text sent before the tool calls, as the model often does ("Let me look that up.").
        thinking: Text of a `thinking` block sent first.
        delay_seconds: Wait before each stream frame (see `Reply.delay_seconds`).
    """
    calls = [calls] if isinstance(calls, ToolCall) else list(calls)
    if not calls:
        raise ValueError("tool_use_reply needs at least one ToolCall")
    parts: list[ReplyPart] = [] if thinking is None else [ReplyThinking(thinking)]
    if text is not None:
        parts.append(ReplyText(text))
    parts.extend(calls)
    return Reply(content=tuple(parts), delay_seconds=delay_seconds)


def error_reply(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    retry_after_ms: int | None = None,
    *,
    should_retry: bool | None = None,
) -> ErrorReply:
    """An HTTP error answer, e.g. `error_reply(529, retry_after_ms=10)` or `error_reply(429, "rate_limit_error")`.

    Args:
        status: HTTP status (4xx or 5xx).
        error_type: `error.type` in the body; defaults to the API's type for `status` (`overloaded_error` for
            529, `rate_limit_error` for 429, `api_error` for other 5xx, ...).
        message: `error.message`; defaults to the API's usual wording.
        retry_after_ms: Adds `retry-after-ms`/`retry-after`, so retries in tests wait only this long.
        should_retry: Adds `x-should-retry`, which overrides whether the SDK retries.
    """
    default_type, default_message = _ERROR_TYPES.get(status, _ERROR_TYPES[500 if status >= 500 else 400])
    return ErrorReply(
        status=status,
        error_type=error_type or default_type,
        message=message or default_message,
        retry_after_ms=retry_after_ms,
        should_retry=should_retry,
    )


def stream_error_reply(
    error_type: str = "overloaded_error",
    message: str | None = None,
    *,
    text: str = "",
    delay_seconds: float = 0.0,
) -> Reply:
    """A reply that streams `text` (if any) and then fails with an `event: error` frame, as the API does when
    it is overloaded mid-stream. A non-streaming request gets the same error as an HTTP status.

    Args:
        error_type: `error.type` of the frame, e.g. `overloaded_error` or `api_error`.
        message: `error.message`; defaults to the API's usual wording.
        text: Partial text streamed before the error.
        delay_seconds: Wait before each stream frame (see `Reply.delay_seconds`).
    """
    error = error_reply(_STATUS_OF_TYPE.get(error_type, 500), error_type, message)
    parts: tuple[ReplyPart, ...] = (ReplyText(text),) if text else ()
    return Reply(content=parts, stream_error=error, delay_seconds=delay_seconds)
