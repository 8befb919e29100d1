"""The supervisor of one pooled MCP session: the one task that opens it, holds it and closes it.

The `mcp` client runs an anyio task group, which must be left by the task that entered it, so each session gets a
task of its own that enters the client, reports it ready, waits to be told to stop, and leaves it. Whatever goes
wrong inside (a crashed transport, an exception group from the SDK) ends that one session only.

Every session sends through the pool's one `httpx2.AsyncClient` on its one transport (a transport and its SSL
context cost about 30 ms and 800 KiB, a client ~3 KiB: per session they would dominate); what is the session's own
is its `SessionIdentity`, the fixed headers and auth flow each of its requests carries (see `_acting_session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx2

from omni_bridge import __version__
from omni_bridge.tools._acting_session import SessionIdentity, act_as
from omni_bridge.tools._auth import AuthStrategy
from omni_bridge.tools._embed_tokens import EmbedTokenError
from omni_bridge.tools._mcp_errors import from_open_failure, recording_http_failures
from omni_bridge.tools._session_key import SessionKey

if TYPE_CHECKING:  # `mcp` is imported when a session opens, not to start: it takes most of a second
    import mcp_types as types
    from mcp import Client
    from mcp.client.client import ConnectMode
    from mcp.client.session import MessageHandlerFnT

__all__ = ["PooledSession", "SessionOptions", "supervise", "wait_closed"]

log = logging.getLogger("omni_bridge.pool")

_CLOSE_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """How every session of one pool connects: the auth strategy, the shared transport, the timeouts, the protocol."""

    auth: AuthStrategy
    http: httpx2.AsyncClient
    """The one client every session sends through (`shared_mcp_client`), on the pool's transport."""
    mode: ConnectMode
    modern: bool
    """Only the 2026-07-28 protocol is spoken (no legacy handshake to fall back on)."""
    tool_timeout: float
    discovered: dict[str, types.DiscoverResult] = field(default_factory=dict)
    """Each server's `server/discover` answer, as the first session to it got it (see `_share_discovery`)."""


"""Sent by every session; one immutable instance rather than one per session."""


@dataclass(eq=False)
class PooledSession:
    """One open MCP client. Only its supervisor task enters and leaves the client."""

    key: SessionKey
    identity: SessionIdentity | None = None
    """What each of this session's requests carries (its headers, its auth flow); fixed when it opens."""
    client: Client | None = None
    in_flight: int = 0
    last_used: float = 0.0
    retired: bool = False
    """Out of the pool: no new calls; closed once the calls still in flight on it have returned."""
    stop: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    """Done once the session is told to close (a future rather than an `asyncio.Event`: a tenth of the memory)."""
    task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and self.task is not None and not self.task.done() and not self.retired

    @property
    def stopping(self) -> bool:
        return self.stop.done()

    def request_stop(self) -> None:
        """Tell the supervisor to close the session (idempotent)."""
        if not self.stop.done():
            self.stop.set_result(None)


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
            session.identity = SessionIdentity.of(options.auth.headers(key), options.auth.http_auth(key))
            act_as(session.identity)  # this task's context: the open, the SDK's tasks started in it, the close
            client = _client(key, options, on_message)
            async with client:
                _share_discovery(client, key, options.discovered)
                session.client = client
                ready.set_result(None)
                await session.stop
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
            elif session.stopping:  # closing an expired or dead session may fail: it is gone either way
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
    """An MCP client for `key` on the pool's shared HTTP client; its identity is `PooledSession.identity`."""
    from mcp import Client

    from omni_bridge.tools._session_transport import pooled_transport

    return Client(
        pooled_transport(key.server, options.http),
        mode=options.mode,
        read_timeout_seconds=options.tool_timeout,
        message_handler=on_message,
        client_info=_client_info(),
        cache=None,  # the pool caches each key's tool list itself; a response cache per session would sit unused
    )


@functools.cache
def _client_info() -> types.Implementation:
    """One description of the bridge for every session (an SDK model each would otherwise hold a copy of)."""
    import mcp_types as types

    return types.Implementation(name="omni-bridge", version=__version__)


def _share_discovery(client: Client, key: SessionKey, discovered: dict[str, types.DiscoverResult]) -> None:
    """Let a session hold the server's first `server/discover` answer instead of its own identical copy.

    Every session still asks (so each user's own headers are checked when the session opens); only an answer
    equal to the one kept for the server is swapped for it (`adopt` installs it without wire traffic), so no
    session ever holds anything it was not told itself.
    """
    own = client.session.discover_result
    if own is None:  # a legacy session: initialize, nothing to share
        return
    kept = discovered.setdefault(key.server, own)
    if kept is not own and kept == own:
        client.session.adopt(kept)
