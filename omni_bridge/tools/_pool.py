"""`SessionPool`: one MCP session to Omni per identity key, shared by every call made for that key.

Omni may bind the user when a session opens, so a session's headers are fixed at creation and a session is
never shared between users (DESIGN.md, MCP sessions). The pool:

- keys sessions by `SessionKey(server, user_id, model_id, topic_name, query_all_views)`;
- opens each session once even when many calls race for it (single flight);
- runs each session in its own supervisor task, which opens and closes it (the `mcp` client's anyio task
  group must be left by the task that entered it), so a crashed transport ends that session only;
- bounds its size (least recently used idle sessions are closed first; when every session is busy, an
  open waits for a free slot) and closes sessions idle for longer than `idle_seconds`;
- reopens a session Omni no longer knows and retries the call once: a 404 on a request that carried the
  session id (the Python SDK's `Session not found`), or a 400 naming the session (the TypeScript SDK's
  "No valid session ID provided"). Either answer means the request was refused before it ran, so the retry
  cannot run anything twice. A call whose connection failed mid-way is never retried, since it may have run;
- caches each key's tool list (TTL; dropped on `notifications/tools/list_changed`), never across keys.

All sessions share one `httpx2` transport and one SSL context: building either costs about 30 ms and
800 KiB, which per session would dominate (sdk-notes §0.6). Per-session `httpx2.AsyncClient`s carry only the
headers; they are never closed themselves, because closing a client closes its transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.client import ConnectMode
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT
from pydantic import SecretStr

from omni_bridge import __version__
from omni_bridge.config import ProtocolMode, Settings
from omni_bridge.exceptions import ConfigError, McpConnectError, SessionExpired
from omni_bridge.tools._headers import mcp_headers
from omni_bridge.tools._mcp_errors import (
    from_open_failure,
    mcp_errors,
    record_http_failure,
    recording_http_failures,
)

__all__ = ["PoolStats", "SessionKey", "SessionPool"]

log = logging.getLogger("omni_bridge.pool")

ProgressCallback = ProgressFnT

_MODES: dict[ProtocolMode, ConnectMode] = {"auto": "auto", "legacy": "legacy", "modern": "2026-07-28"}
_CLOSE_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Everything that decides what an MCP session may see: the server, the user and the pinned scope."""

    server: str
    """The MCP endpoint URL, e.g. `https://acme.omniapp.co/mcp/https`."""
    user_id: str
    """The Omni user id sent as `X-MCP-User-ID`. Never empty: there is no session without a user."""
    model_id: str | None = None
    topic_name: str | None = None
    query_all_views: bool = False

    def __post_init__(self) -> None:
        if not self.user_id.strip():
            raise ValueError("a session needs an Omni user id: there is no default user")
        if not self.server.startswith(("http://", "https://")):
            raise ValueError(f"server must be an http(s) URL of Omni's MCP endpoint, got {self.server[:80]!r}")

    @property
    def digest(self) -> str:
        """A short hash of the key, for logs and task names (the raw user id is not logged)."""
        raw = "\x1f".join([self.server, self.user_id, self.model_id or "", self.topic_name or ""])
        return hashlib.sha256(f"{raw}\x1f{self.query_all_views}".encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"SessionKey(#{self.digest}, model={self.model_id!r}, topic={self.topic_name!r})"


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters of a pool, as `SessionPool.stats()` reads them."""

    open: int
    opening: int
    in_flight: int
    opened_total: int
    expired_total: int
    """Sessions Omni had forgotten (`Session not found`), each reopened on demand."""
    closed_total: int
    calls_total: int


@dataclass(eq=False)
class _Session:
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


class SessionPool:
    """MCP sessions to Omni, one per `SessionKey`, bounded and shared by every caller for that key.

    ```python
    async with SessionPool(api_key=key) as pool:
        session_key = SessionKey(server="https://acme.omniapp.co/mcp/https", user_id=omni_user_id)
        tools = await pool.list_tools(session_key)
        result = await pool.call_tool(session_key, "getData", {"prompt": "revenue by region"})
    ```

    One pool serves any number of users concurrently; it is safe to share between tasks of one event loop.
    """

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        protocol: ProtocolMode = "auto",
        max_sessions: int = 1000,
        idle_seconds: float = 300.0,
        tool_timeout: float = 120.0,
        connect_timeout: float = 30.0,
        tool_list_ttl: float = 300.0,
        http_transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        api_key: the Omni organization API key (it may act for any user); kept out of every repr and error.
        protocol: `auto` (2026-07-28 where spoken, else the legacy handshake), `legacy` or `modern`.
        max_sessions: open sessions at most; past it the least recently used idle one is closed.
        idle_seconds: a session unused this long is closed by the reaper.
        tool_timeout: default deadline of one tool call; Omni is asked to cancel a call that passes it.
        connect_timeout: timeout of connecting and of sending one request.
        tool_list_ttl: how long a key's tool list is reused before it is fetched again.
        http_transport: the shared transport (a proxy or a test's fault injector); the pool closes only a
            transport it built itself.
        clock: monotonic seconds; tests pass their own to expire sessions without waiting.
        """
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if protocol not in _MODES:
            raise ValueError(f"protocol must be one of {sorted(_MODES)}, got {protocol!r}")
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not self._api_key.get_secret_value():
            raise ValueError("api_key must not be empty")
        self._mode = _MODES[protocol]
        self._modern = protocol == "modern"
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.tool_timeout = tool_timeout
        self._timeout = httpx2.Timeout(connect_timeout, read=tool_timeout + connect_timeout)
        self._tool_list_ttl = tool_list_ttl
        self._clock = clock
        self._owns_transport = http_transport is None
        self._transport = http_transport or httpx2.AsyncHTTPTransport(
            verify=httpx2.create_ssl_context(),
            # No cap on connections: a legacy session holds one open for its event stream for its whole life, so
            # a cap would make the calls of many open sessions queue for a connection (and time out). The
            # number of sessions is what `max_sessions` bounds.
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100),
        )
        # The pool's state: open sessions in LRU order, and opens under way. Both change only in this
        # loop's thread, between awaits, so no lock is needed.
        self._sessions: OrderedDict[SessionKey, _Session] = OrderedDict()
        self._opening: dict[SessionKey, asyncio.Future[None]] = {}
        self._reserved = 0  # opens that have a slot but are not in `_sessions` yet
        self._room = asyncio.Event()  # set whenever a slot may have been freed
        self._tool_lists: dict[SessionKey, tuple[float, list[types.Tool]]] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._counts = {"opened": 0, "expired": 0, "closed": 0, "calls": 0}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, api_key: str | SecretStr | None = None, **options: Any
    ) -> SessionPool:
        """A pool configured from `Settings` (`OMNI_API_KEY`, `OMNI_MCP_PROTOCOL`, `OMNI_TOOL_TIMEOUT_SECONDS`)."""
        key = api_key if api_key is not None else settings.omni_api_key
        if key is None:
            raise ConfigError("OMNI_API_KEY: required to open MCP sessions for embed users (an organization key)")
        options.setdefault("protocol", settings.omni_mcp_protocol)
        options.setdefault("tool_timeout", settings.omni_tool_timeout_seconds)
        options.setdefault("connect_timeout", settings.omni_timeout_seconds)
        return cls(api_key=key, **options)

    def __repr__(self) -> str:
        in_flight = sum(s.in_flight for s in self._sessions.values())
        return (
            f"<SessionPool {self._state} sessions={len(self._sessions)} opening={len(self._opening)} "
            f"in_flight={in_flight} max={self.max_sessions}>"
        )

    def stats(self) -> PoolStats:
        return PoolStats(
            open=len(self._sessions),
            opening=len(self._opening),
            in_flight=sum(s.in_flight for s in self._sessions.values()),
            opened_total=self._counts["opened"],
            expired_total=self._counts["expired"],
            closed_total=self._counts["closed"],
            calls_total=self._counts["calls"],
        )

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> SessionPool:
        if self._state != "new":
            raise RuntimeError(f"a SessionPool can be entered once; this one is {self._state}")
        self._state = "open"
        self._reaper = asyncio.create_task(self._reap_forever(), name="omni-bridge-pool-reaper")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every session (each sends its `DELETE` where the protocol has one), then the transport."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for future in list(self._opening.values()):
            future.cancel()
        for session in list(self._sessions.values()):
            self._close(session)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._owns_transport:
            await self._transport.aclose()

    # --- calls -------------------------------------------------------------------------------------------

    async def call_tool(
        self,
        key: SessionKey,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> types.CallToolResult:
        """Call one of Omni's tools as `key`'s user.

        Raises:
            ToolTimeout: no answer within `deadline` seconds (default and cap: `tool_timeout`); Omni was asked
                to cancel the call.
            SessionExpired: Omni forgot the session twice in a row.
            McpConnectError: the connection failed; the call may have run, so it is not retried.
            McpError: Omni refused the request.
        """
        self._counts["calls"] += 1
        # Never past `tool_timeout`: the HTTP read timeout sits just above it, and if that fired first the
        # whole session's transport would die instead of this one call (sdk-notes §0.5).
        deadline = self.tool_timeout if deadline is None else min(deadline, self.tool_timeout)
        for attempt in (1, 2):
            session = await self._lease(key)
            try:
                assert session.client is not None
                with mcp_errors(_where(key.server), modern=self._modern):
                    return await session.client.call_tool(
                        name, arguments or {}, read_timeout_seconds=deadline, progress_callback=progress_callback
                    )
            except SessionExpired:
                self._expired(session)
                if attempt == 2:
                    raise
                log.info("MCP session %s expired before the call ran; reopening and retrying once", key.digest)
            except McpConnectError:
                self._retire(session)
                raise
            finally:
                self._release(session)
        raise AssertionError("unreachable: the loop returns or raises")

    async def list_tools(self, key: SessionKey, *, refresh: bool = False) -> list[types.Tool]:
        """The tools `key`'s user may call, from this key's cache unless stale, refreshed or invalidated."""
        cached = self._tool_lists.get(key)
        if cached is not None and not refresh and self._clock() < cached[0]:
            return cached[1]
        for attempt in (1, 2):
            session = await self._lease(key)
            try:
                assert session.client is not None
                tools: list[types.Tool] = []
                cursor: str | None = None
                with mcp_errors(_where(key.server), modern=self._modern):
                    while True:
                        page = await session.client.list_tools(cursor=cursor, cache_mode="bypass")
                        tools.extend(page.tools)
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                self._tool_lists[key] = (self._clock() + self._tool_list_ttl, tools)
                return tools
            except SessionExpired:
                self._expired(session)
                if attempt == 2:
                    raise
            except McpConnectError:
                self._retire(session)
                raise
            finally:
                self._release(session)
        raise AssertionError("unreachable: the loop returns or raises")

    def invalidate_tools(self, key: SessionKey) -> None:
        """Forget `key`'s cached tool list (the next `list_tools` asks Omni)."""
        self._tool_lists.pop(key, None)

    # --- leasing -----------------------------------------------------------------------------------------

    async def _lease(self, key: SessionKey) -> _Session:
        """An open session for `key` with one more call counted on it (give it back with `_release`)."""
        if self._state != "open":
            raise RuntimeError("the SessionPool is not open; use `async with SessionPool(...)`")
        while True:
            session = self._sessions.get(key)
            if session is not None and session.alive:
                self._sessions.move_to_end(key)
                session.in_flight += 1
                session.last_used = self._clock()
                return session
            if session is not None:
                self._retire(session)
            opening = self._opening.get(key)
            if opening is None:
                opening = asyncio.ensure_future(self._open(key))
                self._opening[key] = opening
                opening.add_done_callback(functools.partial(self._opened, key))
            # Shielded: one caller giving up must not cancel an open that other callers wait for.
            await asyncio.shield(opening)

    def _opened(self, key: SessionKey, opening: asyncio.Future[None]) -> None:
        self._opening.pop(key, None)
        if not opening.cancelled():
            opening.exception()  # every waiter re-raises it; this marks it seen even when all gave up

    def _release(self, session: _Session) -> None:
        session.in_flight -= 1
        session.last_used = self._clock()
        if session.in_flight == 0:
            self._room.set()
            if session.retired:
                self._close(session)

    async def _open(self, key: SessionKey) -> None:
        await self._make_room()
        try:
            session = _Session(key=key, last_used=self._clock())
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            session.task = asyncio.create_task(self._supervise(session, ready), name=f"omni-mcp-{key.digest}")
            try:
                await ready
            except BaseException:
                session.stop.set()
                raise
        finally:
            self._reserved -= 1
        self._counts["opened"] += 1
        self._sessions[key] = session
        log.debug("opened MCP session %s (%d open)", key.digest, len(self._sessions))

    async def _make_room(self) -> None:
        """Reserve a slot for one more session, closing least recently used idle sessions to make one."""
        while len(self._sessions) + self._reserved >= self.max_sessions:
            idle = next((s for s in self._sessions.values() if s.in_flight == 0), None)
            if idle is not None:
                log.debug("pool full: closing least recently used session %s", idle.key.digest)
                self._retire(idle)
                continue
            self._room.clear()  # no await between the check and here, so no wake-up can be missed
            await self._room.wait()
        self._reserved += 1

    # --- sessions ----------------------------------------------------------------------------------------

    async def _supervise(self, session: _Session, ready: asyncio.Future[None]) -> None:
        """Open the session, hold it until asked to stop, close it; whatever happens, only this session ends."""
        key = session.key
        headers = mcp_headers(
            self._api_key.get_secret_value(),
            user_id=key.user_id,
            model_id=key.model_id,
            topic_name=key.topic_name,
            query_all_views=key.query_all_views,
        )
        http = httpx2.AsyncClient(
            transport=self._transport,
            headers=headers,
            timeout=self._timeout,
            event_hooks={"response": [record_http_failure]},  # keeps the status the SDK drops (see _mcp_errors)
        )
        client = Client(
            streamable_http_client(key.server, http_client=http),
            mode=self._mode,
            read_timeout_seconds=self.tool_timeout,
            message_handler=self._message_handler(key),
            client_info=types.Implementation(name="omni-bridge", version=__version__),
        )
        # The handshake is sent from this task, so its HTTP failures (a 401, say) are recorded here; each
        # call's own requests are recorded in its caller's context instead.
        with recording_http_failures() as opening:
            try:
                async with client:
                    session.client = client
                    ready.set_result(None)
                    await session.stop.wait()
            except asyncio.CancelledError:
                if not ready.done():
                    ready.cancel()
                raise
            except BaseException as exc:  # the SDK raises exception groups; all of them end this session only
                failure = opening[-1] if opening and not ready.done() else None
                error = from_open_failure(exc, where=_where(key.server), failure=failure, modern=self._modern)
                if not ready.done():
                    ready.set_exception(error)
                elif session.stop.is_set():  # closing an expired or dead session may fail: it is gone either way
                    log.debug("MCP session %s closed with %s", key.digest, error)
                else:
                    log.warning("MCP session %s ended: %s", key.digest, error)
            finally:
                session.client = None
                self._forget(session)

    def _message_handler(self, key: SessionKey) -> MessageHandlerFnT:
        async def handle(message: IncomingMessage) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                log.debug("tool list changed for %s", key.digest)
                self.invalidate_tools(key)

        return handle

    def _expired(self, session: _Session) -> None:
        if self._sessions.get(session.key) is session:
            self._counts["expired"] += 1
        self._retire(session)

    def _retire(self, session: _Session) -> None:
        """Take `session` out of the pool; close it now, or when the calls still on it have returned.

        Calls in flight on an expired session get `Session not found` themselves and retry on the new
        session; closing under them would turn that safe retry into a connection error.
        """
        session.retired = True
        self._forget(session)
        if session.in_flight == 0:
            self._close(session)

    def _forget(self, session: _Session) -> None:
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
            self._counts["closed"] += 1
            self._room.set()

    def _close(self, session: _Session) -> None:
        session.stop.set()
        task = session.task
        if task is not None and not task.done():
            self._track(asyncio.ensure_future(_await_closed(task)))
        self._forget(session)

    def _track(self, task: asyncio.Future[None]) -> None:
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- idle expiry -------------------------------------------------------------------------------------

    def expire_idle(self) -> int:
        """Close sessions unused for `idle_seconds`; returns how many. The reaper calls this periodically."""
        now = self._clock()
        expired = [s for s in self._sessions.values() if s.in_flight == 0 and now - s.last_used >= self.idle_seconds]
        for session in expired:
            self._retire(session)
        return len(expired)

    async def _reap_forever(self) -> None:
        interval = max(1.0, min(self.idle_seconds / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            expired = self.expire_idle()
            if expired:
                log.debug("closed %d idle MCP session(s)", expired)


async def _await_closed(task: asyncio.Task[None]) -> None:
    """Give a session's supervisor time to leave the client cleanly, then cancel it."""
    done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE_SECONDS)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _where(url: str) -> str:
    """The endpoint for messages: scheme, host and path, never userinfo or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
