"""The streamable-HTTP transport of a pooled session, wrapped so an idle session holds no message it has read.

The `mcp` SDK's dispatcher reads the transport's stream in a loop (`async for item in read_stream`), so between
two messages the loop variable keeps the last one alive: a session left idle after a call pins that call's whole
raw JSON-RPC answer (a tool list is ~17 KiB, a query result can be far more) for as long as it stays open. With
thousands of pooled sessions that is most of their memory.

`pooled_transport` hands the dispatcher a copy of each message (`SessionMessage` is a plain dataclass) and blanks
the copy's payload when the dispatcher asks for the next one. By then the previous message has been routed: the
dispatcher handed a response's `result` to the waiting call (which holds that dict itself) and a server request
or notification to its handler (which holds the message object, not the wrapper). Only the loop's reference to
the wrapper remains, and it now points at a shared placeholder.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator
from types import TracebackType

import anyio
import httpx2
import mcp_types as types
from mcp.client._transport import ReadStream, TransportStreams
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

__all__ = ["pooled_transport"]

_SPENT = types.JSONRPCNotification(jsonrpc="2.0", method="omni-bridge/spent")
"""What a routed message's wrapper points at afterwards: one shared, tiny object instead of the message."""


@contextlib.asynccontextmanager
async def pooled_transport(url: str, http_client: httpx2.AsyncClient) -> AsyncIterator[TransportStreams]:
    """`streamable_http_client(url, http_client=...)` whose read side forgets each message once it is routed."""
    async with streamable_http_client(url, http_client=http_client) as (read_stream, write_stream):
        yield _ForgetfulReadStream(read_stream), write_stream


class _ForgetfulReadStream:
    """A read stream yielding a copy of each message; the previous copy is blanked on the next receive."""

    __slots__ = ("_inner", "_previous")

    def __init__(self, inner: ReadStream[SessionMessage | Exception]) -> None:
        self._inner = inner
        self._previous: SessionMessage | None = None

    @property
    def last_context(self) -> contextvars.Context | None:
        # The dispatcher runs server requests and notifications in the sender's context (duck-typed attribute).
        context = getattr(self._inner, "last_context", None)
        return context if isinstance(context, contextvars.Context) else None

    async def receive(self) -> SessionMessage | Exception:
        self._forget_previous()
        item = await self._inner.receive()
        if isinstance(item, SessionMessage):
            item = self._previous = SessionMessage(message=item.message, metadata=item.metadata)
        return item

    def _forget_previous(self) -> None:
        if self._previous is not None:
            self._previous.message = _SPENT
            self._previous.metadata = None
            self._previous = None

    def __aiter__(self) -> _ForgetfulReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            self._forget_previous()
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._forget_previous()
        await self._inner.aclose()

    async def __aenter__(self) -> _ForgetfulReadStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
