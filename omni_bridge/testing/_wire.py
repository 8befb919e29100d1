"""The Messages API wire format: a `Reply` as a JSON message or as the SSE frames of a streamed one.

Pure functions, so the exact frames can be checked without a server. The shapes follow what the
`anthropic` SDK parses: every SSE frame has an `event:` line (the SDK skips frames without
one), deltas refer to blocks by `index`, tool input arrives as `input_json_delta` fragments that only form
valid JSON together, and `message_delta.usage` carries cumulative totals that overwrite the snapshot.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from omni_bridge.testing._capture import ReplyUsage
from omni_bridge.testing._replies import Reply, ReplyText, ReplyThinking, ToolCall

__all__ = ["Frame", "content_blocks", "encode_frame", "message_body", "stream_frames"]

Frame = tuple[str, dict[str, Any]]
"""An SSE frame as (event type, data)."""

TEXT_CHUNK = 16
JSON_CHUNK = 12


def content_blocks(reply: Reply, next_tool_id: Callable[[], str]) -> list[dict[str, Any]]:
    """The reply's content as API content blocks; tool calls without an id get `next_tool_id()`."""
    blocks: list[dict[str, Any]] = []
    for part in reply.content:
        if isinstance(part, ReplyText):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ReplyThinking):
            signature = part.signature or _fake_signature(part.thinking)
            blocks.append({"type": "thinking", "thinking": part.thinking, "signature": signature})
        elif isinstance(part, ToolCall):
            blocks.append(
                {"type": "tool_use", "id": part.id or next_tool_id(), "name": part.name, "input": dict(part.input)}
            )
    return blocks


def message_body(
    reply: Reply, blocks: list[dict[str, Any]], *, message_id: str, model: str, usage: ReplyUsage
) -> dict[str, Any]:
    """The JSON body of a non-streamed answer."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": reply.effective_stop_reason,
        "stop_sequence": None,
        "usage": usage.as_wire(),
    }


def stream_frames(
    reply: Reply, blocks: list[dict[str, Any]], *, message_id: str, model: str, usage: ReplyUsage
) -> Iterator[Frame]:
    """The SSE frames of a streamed answer, ending in `message_stop` or, for `reply.stream_error`, `error`."""
    start_usage = {**usage.as_wire(), "output_tokens": 1}  # the API reports a token or so up front
    message = {**message_body(reply, [], message_id=message_id, model=model, usage=usage), "usage": start_usage}
    yield "message_start", {"type": "message_start", "message": {**message, "stop_reason": None}}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(blocks):
        yield from _block_frames(index, block)
    if reply.stream_error is not None:
        yield (
            "error",
            {"type": "error", "error": {"type": reply.stream_error.error_type, "message": reply.stream_error.message}},
        )
        return
    yield "ping", {"type": "ping"}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.effective_stop_reason, "stop_sequence": None},
            "usage": usage.as_wire(),
        },
    )
    yield "message_stop", {"type": "message_stop"}


def encode_frame(frame: Frame) -> bytes:
    event, data = frame
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _block_frames(index: int, block: dict[str, Any]) -> Iterator[Frame]:
    kind = block["type"]
    if kind == "text":
        shell: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in _chunks(block["text"], TEXT_CHUNK)]
    elif kind == "thinking":
        shell = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _chunks(block["thinking"], TEXT_CHUNK)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        shell = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        text = json.dumps(block["input"])
        size = min(JSON_CHUNK, math.ceil(len(text) / 2))  # always at least two fragments
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in _chunks(text, size)]
    yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": shell}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _fake_signature(thinking: str) -> str:
    return "fake-signature-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]
