"""What the fake saw: every request as a `CapturedRequest`, so tests can assert what an agent sent.

The capture is taken before the reply is chosen and handed to the responder, then completed with what was
answered (status, usage, how the exchange ended). Credentials never reach it: the auth headers are masked
the moment a request is recorded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from omni_bridge.testing._faults import StreamFault

__all__ = ["SENSITIVE_HEADERS", "CapturedRequest", "Outcome", "ReplyUsage", "mask_headers"]

SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization"})
_MASK = "[secure]"

Outcome = Literal["pending", "completed", "error", "disconnected", "aborted", "faulted"]
"""How an exchange ended: `completed` (message sent), `error` (error status or `event: error` frame sent),
`disconnected` (the client went away first), `aborted` (the fake stopped serving first), `faulted` (a
`StreamFault` other than a stall broke the stream: dropped, truncated or malformed)."""


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased headers with the values of `SENSITIVE_HEADERS` replaced by `[secure]`."""
    return {name.lower(): _MASK if name.lower() in SENSITIVE_HEADERS else value for name, value in headers.items()}


@dataclass(frozen=True)
class ReplyUsage:
    """Token counts reported for one reply, as in the Messages API `usage` object."""

    input_tokens: int
    """Input tokens neither read from nor written to the prompt cache."""
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    """The part of `cache_creation_input_tokens` written with `"ttl": "1h"`."""

    def as_wire(self) -> dict[str, Any]:
        """The `usage` object as the API sends it."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens - self.cache_creation_1h_input_tokens,
                "ephemeral_1h_input_tokens": self.cache_creation_1h_input_tokens,
            },
        }


@dataclass(eq=False)
class CapturedRequest:
    """One request the fake received, with the parts of the answer tests assert on."""

    index: int
    """Position in `FakeAnthropic.requests`, from 0."""
    path: str
    body: dict[str, Any]
    """The parsed JSON body (`{}` if it was not a JSON object)."""
    headers: dict[str, str]
    """Lower-cased request headers; `authorization` and `x-api-key` read `[secure]`."""
    retry_count: int
    """From `x-stainless-retry-count`: 0 on the SDK's first attempt, 1 on its first retry, ..."""
    stream: bool
    status: int | None = None
    """HTTP status answered; `None` until the answer starts."""
    usage: ReplyUsage | None = None
    """Usage reported with a message; `None` for errors."""
    outcome: Outcome = "pending"
    fault: StreamFault | None = None
    """The stream fault that struck this answer, once it has."""
    _finished: bool = field(default=False, init=False, repr=False)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __repr__(self) -> str:
        return (
            f"<CapturedRequest #{self.index} {self.path} stream={self.stream} retry={self.retry_count} "
            f"status={self.status} outcome={self.outcome!r}{f' fault={self.fault.kind}' if self.fault else ''}>"
        )

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def system(self) -> str | list[dict[str, Any]] | None:
        """The `system` parameter as sent: a string, a list of text blocks, or `None`."""
        system = self.body.get("system")
        return system if isinstance(system, str | list) else None

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools")
        return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []

    @property
    def tool_names(self) -> list[str]:
        return [str(tool.get("name")) for tool in self.tools]

    @property
    def last_message(self) -> dict[str, Any] | None:
        return self.messages[-1] if self.messages else None

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The `tool_result` blocks of the last message (what the client sends back after a tool turn)."""
        last = self.last_message
        content = last.get("content") if last is not None else None
        if not isinstance(content, list):
            return []
        return [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]

    @property
    def tool_result_texts(self) -> list[str]:
        """The text of each `tool_result` in the last message; results flagged `is_error` read `error: <text>`."""
        texts: list[str] = []
        for result in self.tool_results:
            content = result.get("content")
            if isinstance(content, list):
                text = "\n".join(str(b.get("text")) for b in content if isinstance(b, dict) and b.get("type") == "text")
            else:
                text = "" if content is None else str(content)
            texts.append(f"error: {text}" if result.get("is_error") else text)
        return texts

    @property
    def cache_breakpoints(self) -> list[str]:
        """Where `cache_control` markers sit, e.g. `["tools[1]", "system[0]", "messages[2].content[0]"]`;
        a top-level marker reads `"request"`."""
        found: list[str] = []
        found += [f"tools[{i}]" for i, tool in enumerate(self.tools) if "cache_control" in tool]
        if isinstance(self.system, list):
            found += [f"system[{i}]" for i, block in enumerate(self.system) if _marked(block)]
        for i, message in enumerate(self.messages):
            content = message.get("content")
            if isinstance(content, list):
                found += [f"messages[{i}].content[{j}]" for j, block in enumerate(content) if _marked(block)]
        if "cache_control" in self.body:
            found.append("request")
        return found

    async def wait_finished(self) -> Outcome:
        """Wait until the fake has finished this exchange and return how it ended.

        Bound the wait yourself, e.g. `async with asyncio.timeout(5): await captured.wait_finished()`.
        """
        # The fake may serve from another thread's loop: waiters hand in a future of their own loop, which
        # `_finish` resolves thread-safely.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._finished:
                return self.outcome
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with self._lock:
                self._waiters.remove((loop, future))
        return self.outcome

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcome = outcome
            self._finished = True
            waiters = list(self._waiters)
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and "cache_control" in block
