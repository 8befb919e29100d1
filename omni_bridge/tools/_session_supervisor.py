"""The supervisor of one pooled MCP session: the one task that opens it, holds it and closes it.

The `mcp` client runs an anyio task group, which must be left by the task that entered it, so each session gets a
task of its own that enters the client, reports it ready, waits to be told to stop, and leaves it. Whatever goes
wrong inside (a crashed transport, an exception group from the SDK) ends that one session only.

Every session's `httpx2.AsyncClient` shares the pool's transport (building a transport and its SSL context costs
about 30 ms and 800 KiB, which per session would dominate) and carries only the session's fixed identity headers.
These clients are never closed themselves, because closing a client closes its transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.client import ConnectMode
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client

from omni_bridge import __version__
from omni_bridge.tools._auth import AuthStrategy
from omni_bridge.tools._embed_tokens import EmbedTokenError
from omni_bridge.tools._mcp_errors import from_open_failure, record_http_failure, recording_http_failures
from omni_bridge.tools._session_key import SessionKey

__all__ = ["PooledSession", "SessionOptions", "supervise", "wait_closed"]

log = logging.getLogger("omni_bridge.pool")

_CLOSE_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """How every session of one pool connects: the auth strategy, the shared transport, the timeouts, the protocol."""

    auth: AuthStrategy
    transport: httpx2.AsyncBaseTransport
    timeout: httpx2.Timeout
    """Connect and send timeouts; the read timeout sits just above the longest tool call."""
    mode: ConnectMode
    modern: bool
    """Only the 2026-07-28 protocol is spoken (no legacy handshake to fall back on)."""
    tool_timeout: float


@dataclass(eq=False)
class PooledSession:
    """One open MCP client. Only its supervisor task enters and leaves the client."""

    key: SessionKey
    client: Client | None = None
    in_flight: int = 0
    last_used: float = 0.0
    retired: bool = False
    """Out of the pool: no new calls; closed once the calls still in flight on it have returned."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and self.task is not None and not self.task.done() and not self.retired


async def supervise(
    session: PooledSession,
    ready: asyncio.Future[None],
    options: SessionOptions,
    *,
    on_message: MessageHandlerFnT,
    on_end: Callable[[PooledSession], None],
) -> None:
    """Open the session, hold it until `session.stop` is set, close it; whatever happens, only this session ends.

    `ready` gets the outcome of the open: `None` once the client is usable, or the `McpError` that stopped it.
    `on_end` runs when the session is gone, however it ended.
    """
    key = session.key
    # The handshake is sent from this task, so its HTTP failures (a 401, say) are recorded here; each
    # call's own requests are recorded in its caller's context instead.
    with recording_http_failures() as opening:
        try:
            await options.auth.prepare(key)  # mint the user's token first, so a refused grant is this open's error
            client = _client(key, options, on_message)
            async with client:
                session.client = client
                ready.set_result(None)
                await session.stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except EmbedTokenError as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP session %s ended: %s", key.digest, exc)
        except BaseException as exc:  # the SDK raises exception groups; all of them end this session only
            failure = opening[-1] if opening and not ready.done() else None
            error = from_open_failure(exc, where=key.where, failure=failure, modern=options.modern)
            if not ready.done():
                ready.set_exception(error)
            elif session.stop.is_set():  # closing an expired or dead session may fail: it is gone either way
                log.debug("MCP session %s closed with %s", key.digest, error)
            else:
                log.warning("MCP session %s ended: %s", key.digest, error)
        finally:
            session.client = None
            on_end(session)


async def wait_closed(task: asyncio.Task[None]) -> None:
    """Give a session's supervisor time to leave the client cleanly, then cancel it."""
    done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE_SECONDS)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _client(key: SessionKey, options: SessionOptions, on_message: MessageHandlerFnT) -> Client:
    """An MCP client for `key`, its identity headers fixed now and never changed (a token renews per request)."""
    http = httpx2.AsyncClient(
        transport=options.transport,
        headers=options.auth.headers(key),
        auth=options.auth.http_auth(key),
        timeout=options.timeout,
        event_hooks={"response": [record_http_failure]},  # keeps the status the SDK drops (see _mcp_errors)
    )
    return Client(
        streamable_http_client(key.server, http_client=http),
        mode=options.mode,
        read_timeout_seconds=options.tool_timeout,
        message_handler=on_message,
        client_info=types.Implementation(name="omni-bridge", version=__version__),
    )
