"""`SessionPool`: one MCP session to Omni per identity key, shared by every call made for that key.

Omni may bind the user when a session opens, so a session's headers are fixed at creation and a session is
never shared between users. The pool:

- keys sessions by `SessionKey(server, user_id, model_id, topic_name, query_all_views)`;
- opens each session once even when many calls race for it, bounds their number (least recently used idle
  sessions are closed first) and closes sessions idle for longer than `idle_seconds` (`SessionLeases`);
- runs each session in its own supervisor task, so a crashed transport ends that session only (`supervise`);
- reopens a session Omni no longer knows and retries the call once, because the refusal proves the call never
  ran; a call whose connection failed mid-way is never retried, since it may have run (`run_on_session`);
- caches each key's tool list (TTL, at most the idle time; dropped on `notifications/tools/list_changed`),
  never across keys, for as many keys as it has sessions at most (the reaper drops the expired lists too).

All sessions share one `httpx2` client, transport and SSL context; each request carries its own session's identity
(`_acting_session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import httpx2
from pydantic import SecretStr

from omni_bridge._bounded import BoundedMap
from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.tools._acting_session import shared_mcp_client
from omni_bridge.tools._auth import AuthStrategy, EmbedTokenAuth, OrgKeyAuth
from omni_bridge.tools._embed_tokens import EmbedTokenMinter
from omni_bridge.tools._rest_transport import shared_ssl_context
from omni_bridge.tools._session_key import SessionKey
from omni_bridge.tools._session_leases import SessionLeases
from omni_bridge.tools._session_retry import run_on_session
from omni_bridge.tools._session_supervisor import SessionOptions
from omni_bridge.types import AuthStrategyName, ProtocolMode

if TYPE_CHECKING:  # `mcp` is imported when a session opens, not to start: it takes most of a second
    import mcp_types as types
    from mcp import Client
    from mcp.client.client import ConnectMode
    from mcp.client.session import IncomingMessage, MessageHandlerFnT
    from mcp.shared.dispatcher import ProgressFnT

__all__ = ["PoolStats", "SessionPool"]

log = logging.getLogger("omni_bridge.pool")

ProgressCallback: TypeAlias = "ProgressFnT"

EMBED_TOKEN_PATH = "/oauth/token"
"""Where Omni's JWT-bearer grant for embed MCP tokens lives, under the instance's base URL."""

_MODES: dict[ProtocolMode, ConnectMode] = {"auto": "auto", "legacy": "legacy", "modern": "2026-07-28"}


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
        api_key: str | SecretStr | None = None,
        auth: AuthStrategyName = "org_key",
        embed_secret: str | SecretStr | None = None,
        token_url: str | None = None,
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
            Needed with `auth="org_key"`.
        auth: how sessions act as their user: `org_key` (the key plus `X-MCP-User-ID`) or `embed_token` (a
            per-user token minted from `embed_secret` at `token_url`; keys then need a `principal`).
        embed_secret: the embed secret that signs token requests (`auth="embed_token"`); never shown.
        token_url: Omni's token endpoint, e.g. `https://acme.omniapp.co/oauth/token` (`auth="embed_token"`).
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
        self._modern = protocol == "modern"
        self.idle_seconds = idle_seconds
        self.tool_timeout = tool_timeout
        self._clock = clock
        self._owns_transport = http_transport is None
        self._transport = http_transport or httpx2.AsyncHTTPTransport(
            verify=shared_ssl_context(),  # one CA bundle loaded per process, not one per client
            # No cap on connections: a legacy session holds one open for its event stream for its whole life, so
            # a cap would make the calls of many open sessions queue for a connection (and time out). The
            # number of sessions is what `max_sessions` bounds.
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100),
        )
        self.auth: AuthStrategy = _strategy(auth, api_key, embed_secret, token_url, self._transport, connect_timeout)
        timeout = httpx2.Timeout(connect_timeout, read=tool_timeout + connect_timeout)
        options = SessionOptions(
            auth=self.auth,
            http=shared_mcp_client(self._transport, timeout),
            mode=_MODES[protocol],
            modern=self._modern,
            tool_timeout=tool_timeout,
        )
        self._leases = SessionLeases(options, max_sessions=max_sessions, on_message=self._message_handler, clock=clock)
        # A list outlives neither its TTL nor its user's idle session: a user gone quiet holds nothing here.
        self._tool_lists: BoundedMap[SessionKey, list[types.Tool]] = BoundedMap(
            max_sessions, ttl=min(tool_list_ttl, idle_seconds), clock=clock
        )
        self._reaper: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._calls = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, api_key: str | SecretStr | None = None, **options: Any
    ) -> SessionPool:
        """A pool configured from `Settings` (`OMNI_API_KEY`, `OMNI_MCP_PROTOCOL`, `OMNI_TOOL_TIMEOUT_SECONDS`)."""
        key = api_key if api_key is not None else settings.omni_api_key
        if settings.omni_auth == "embed_token":
            if settings.omni_embed_secret is None:
                raise ConfigError("OMNI_EMBED_SECRET: required with OMNI_AUTH=embed_token (it signs token requests)")
            if settings.omni_base_url is None:
                raise ConfigError("OMNI_BASE_URL: required to find Omni's /oauth/token with OMNI_AUTH=embed_token")
            options.setdefault("auth", "embed_token")
            options.setdefault("embed_secret", settings.omni_embed_secret)
            options.setdefault("token_url", str(settings.omni_base_url).rstrip("/") + EMBED_TOKEN_PATH)
        elif key is None:
            raise ConfigError("OMNI_API_KEY: required to open MCP sessions for embed users (an organization key)")
        options.setdefault("protocol", settings.omni_mcp_protocol)
        options.setdefault("tool_timeout", settings.omni_tool_timeout_seconds)
        options.setdefault("connect_timeout", settings.omni_timeout_seconds)
        return cls(api_key=key, **options)

    @property
    def max_sessions(self) -> int:
        """Open sessions at most; past it the least recently used idle one is closed."""
        return self._leases.max_sessions

    @max_sessions.setter
    def max_sessions(self, value: int) -> None:
        self._leases.max_sessions = value

    def __repr__(self) -> str:
        leases = self._leases
        return (
            f"<SessionPool {self._state} auth={self.auth.name} sessions={leases.open} opening={leases.opening} "
            f"in_flight={leases.in_flight} max={self.max_sessions}>"
        )

    def stats(self) -> PoolStats:
        leases = self._leases
        return PoolStats(
            open=leases.open,
            opening=leases.opening,
            in_flight=leases.in_flight,
            opened_total=leases.counts["opened"],
            expired_total=leases.counts["expired"],
            closed_total=leases.counts["closed"],
            calls_total=self._calls,
        )

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> SessionPool:
        if self._state != "new":
            raise RuntimeError(f"a SessionPool can be entered once; this one is {self._state}")
        self._state = "open"
        self._leases.start()
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
        await self._leases.aclose()
        await self.auth.aclose()
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
        self._calls += 1
        # Never past `tool_timeout`: the HTTP read timeout sits just above it, and if that fired first the
        # whole session's transport would die instead of this one call.
        deadline = self.tool_timeout if deadline is None else min(deadline, self.tool_timeout)

        async def call(client: Client) -> types.CallToolResult:
            return await client.call_tool(
                name, arguments or {}, read_timeout_seconds=deadline, progress_callback=progress_callback
            )

        return await run_on_session(self._leases, key, call, modern=self._modern)

    async def list_tools(self, key: SessionKey, *, refresh: bool = False) -> list[types.Tool]:
        """The tools `key`'s user may call, from this key's cache unless stale, refreshed or invalidated."""
        cached = None if refresh else self._tool_lists.get(key)
        if cached is not None:
            return cached

        async def every_page(client: Client) -> list[types.Tool]:
            tools: list[types.Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    return tools

        tools = await run_on_session(self._leases, key, every_page, modern=self._modern)
        self._tool_lists.put(key, tools)
        return tools

    @property
    def cached_tool_lists(self) -> int:
        """Keys whose tool list is held (at most `max_sessions` as built; expired ones leave with the reaper)."""
        return len(self._tool_lists)

    def invalidate_tools(self, key: SessionKey) -> None:
        """Forget `key`'s cached tool list (the next `list_tools` asks Omni)."""
        self._tool_lists.pop(key)

    def _message_handler(self, key: SessionKey) -> MessageHandlerFnT:
        import mcp_types as types

        async def handle(message: IncomingMessage) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                log.debug("tool list changed for %s", key.digest)
                self.invalidate_tools(key)

        return handle

    def close_session(self, key: SessionKey) -> bool:
        """Close `key`'s session now (when its calls in flight have returned) and forget its tool list.

        For a session the bridge knows it will not use again, rather than letting it idle out; whether one was open.
        """
        self.invalidate_tools(key)
        return self._leases.retire_key(key)

    # --- idle expiry -------------------------------------------------------------------------------------

    def expire_idle(self) -> int:
        """Close sessions unused for `idle_seconds` (and drop expired tool lists); returns how many sessions.

        The reaper calls this periodically.
        """
        self._tool_lists.expire()
        return self._leases.expire_idle(self.idle_seconds)

    async def _reap_forever(self) -> None:
        interval = max(1.0, min(self.idle_seconds / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            expired = self.expire_idle()
            if expired:
                log.debug("closed %d idle MCP session(s)", expired)


def _strategy(
    name: AuthStrategyName,
    api_key: str | SecretStr | None,
    embed_secret: str | SecretStr | None,
    token_url: str | None,
    transport: httpx2.AsyncBaseTransport,
    timeout: float,
) -> AuthStrategy:
    if name == "org_key":
        if api_key is None:
            raise ValueError("api_key is required with auth='org_key'")
        return OrgKeyAuth(api_key if isinstance(api_key, SecretStr) else SecretStr(api_key))
    if name == "embed_token":
        if embed_secret is None or token_url is None:
            raise ValueError("embed_secret and token_url are required with auth='embed_token'")
        secret = embed_secret if isinstance(embed_secret, SecretStr) else SecretStr(embed_secret)
        return EmbedTokenAuth(EmbedTokenMinter(token_url, secret, transport=transport, timeout=timeout))
    raise ValueError(f"auth must be 'org_key' or 'embed_token', got {name!r}")
