"""Stream faults: the ways a streamed answer breaks after its response headers, on purpose.

A real Messages API stream can drop (the connection closes mid-body), end early (a clean end of the body,
but no `message_stop`), carry a `data:` line that is not JSON, or stall (no bytes for a while). The SDK
surfaces each differently, or not at all (an early end looks like a short answer), so code that streams
from Claude needs tests for all four. `FakeAnthropic` applies a `StreamFault` to the SSE frames of a reply;
the frames themselves stay those of `_wire`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from omni_bridge.testing._wire import Frame, encode_frame

__all__ = ["FaultKind", "StreamDropped", "StreamFault", "faulty_sse", "install_drop_log_filter"]

FaultKind = Literal["disconnect", "truncate", "malformed", "stall"]
"""`disconnect`: close the connection mid-body (the client reads an incomplete chunked body); `truncate`:
end the body cleanly without the rest (no `message_delta`, no `message_stop`); `malformed`: send one event
whose `data:` is cut-off JSON, then carry on; `stall`: stop sending for a while (or until the client gives
up), then carry on."""

_MAX_STALL_SECONDS = 60.0


@dataclass(frozen=True)
class StreamFault:
    """Break the next streamed answer(s) at one event.

    Example: `StreamFault("disconnect", after_events=4)` sends `message_start`, `ping`, `content_block_start`
    and the first `content_block_delta` of a text reply, then drops the connection.
    """

    kind: FaultKind
    after_events: int = 0
    """Events sent intact before the fault; every SSE event counts, `ping` included (0: none at all)."""
    stall_seconds: float | None = None
    """`stall` only: how long to send nothing before carrying on; `None` stalls until the client goes away."""
    times: int | None = 1
    """How many streamed answers it breaks, one after another; `None`: every one from now on."""

    def __post_init__(self) -> None:
        if self.kind not in ("disconnect", "truncate", "malformed", "stall"):
            raise ValueError(f"unknown stream fault {self.kind!r}")
        if self.after_events < 0:
            raise ValueError("after_events must not be negative")
        if self.stall_seconds is not None and not 0 <= self.stall_seconds <= _MAX_STALL_SECONDS:
            raise ValueError(f"stall_seconds must be between 0 and {_MAX_STALL_SECONDS:.0f}, or None (forever)")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None (always)")


class StreamDropped(Exception):
    """Raised out of a faulty body to make the response end without completing: the connection is closed."""


async def faulty_sse(
    frames: Iterator[Frame], delay_seconds: float, fault: StreamFault | None, on_fault: Callable[[], None]
) -> AsyncGenerator[bytes, None]:
    """The encoded frames, `delay_seconds` apart, broken by `fault` (`on_fault()` is called as it strikes)."""
    for position, frame in enumerate(frames):
        if position and delay_seconds:
            await asyncio.sleep(delay_seconds)
        chunk = encode_frame(frame)
        if fault is not None and position == fault.after_events:
            on_fault()
            if fault.kind == "disconnect":
                raise StreamDropped
            if fault.kind == "truncate":
                return
            if fault.kind == "malformed":
                chunk = _corrupt(chunk)
            elif fault.stall_seconds is None:
                await asyncio.Event().wait()  # until the client goes away or the fake stops serving
            else:
                await asyncio.sleep(fault.stall_seconds)
        yield chunk


def _corrupt(chunk: bytes) -> bytes:
    """The same event with its `data:` JSON cut in half (the framing kept, so the SDK tries to parse it)."""
    head, _, data = chunk.decode().rstrip("\n").rpartition("data: ")
    return f"{head}data: {data[: max(1, len(data) // 2)]}\n\n".encode()


# A drop makes uvicorn log "ASGI callable returned without completing response." at ERROR: true, and asked for.
dropping: contextvars.ContextVar[bool] = contextvars.ContextVar("fake_anthropic_dropping", default=False)


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (dropping.get() and "without completing response" in record.getMessage())


_FILTER = _DropFilter()


def install_drop_log_filter() -> None:
    """Keep uvicorn from reporting the fake's deliberate drops as server errors."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
