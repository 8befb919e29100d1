"""`OmniConnection`: the one place that assembles "Omni for user X", owned as one async context manager.

`Bridge`, the MCP proxy, every framework adapter and the CLI act for many end users through one organization
key, and each needs the same parts: the target (the configured Omni, or the sandbox started in-process when
none is configured), the REST client, the `SessionPool` (one MCP session per user, reused by every call of that
user) and the `IdentityResolver` (cached, single flight, both ways). Building them here, from `Settings` or from
explicit arguments, gives every caller one sandbox label, one upsert rule and one no-default-user rule.

With no model pinned, `toolset` pins a user's model when that user may see exactly one (`auto_pin_model`,
asked of `pickModel` from code once per user and cached; the rules are in `omni_bridge.tools._auto_pin`).

This module imports no LLM SDK, so the proxy and the adapters start without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import SecretStr

from omni_bridge._bounded import BoundedMap
from omni_bridge.agent.identity import EndUser, IdentityResolver, OmniIdentity
from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.sandbox import MCP_PATH, Sandbox, SandboxConfig
from omni_bridge.tools import (
    EMBED_TOKEN_PATH,
    ArtifactStore,
    EmbedPrincipal,
    MemoryArtifactStore,
    ModelPins,
    OmniRestClient,
    SessionKey,
    SessionPool,
    ToolPolicy,
    Toolset,
    configured_budget,
)
from omni_bridge.types import AuthStrategyName, ProtocolMode

__all__ = ["SANDBOX_DIR", "SANDBOX_SERVER", "OmniConnection"]

SANDBOX_DIR = "sandbox"
"""The folder of `BRIDGE_DATA_DIR` where the embedded sandbox keeps its AI jobs and conversations."""
SANDBOX_SERVER = "sandbox:embedded"
"""The `server` of identities on the embedded sandbox: it listens on a new port each run but keeps its users'
ids, so identities (and the conversations bound to them) name it by this stable label rather than by its URL."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Open:
    """The parts of an entered connection; built by `__aenter__`, so never half there."""

    base_url: str
    mcp_url: str
    server: str
    rest: OmniRestClient
    pool: SessionPool
    resolver: IdentityResolver
    sandbox: Sandbox | None
    pins: ModelPins | None


class OmniConnection:
    """One Omni (or the sandbox), one REST client, one session pool and one identity resolver for every end user.

    ```python
    async with OmniConnection.from_settings() as omni:      # OMNI_BASE_URL unset: the sandbox, in-process
        identity = await omni.resolve("cust-42")            # or EndUser(...) with a profile to upsert
        toolset = await omni.toolset(identity)              # that end user's tools, on their pooled session
        tools = await toolset.definitions()
    ```

    End users are named by their external id (the runtime's own user key, Omni's `embedExternalId`). A plain
    external id must already exist in Omni as an embed user; an `EndUser` with a profile is upserted first.
    There is no default user. Safe to share between the tasks of one loop.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | SecretStr | None = None,
        mcp_url: str | None = None,
        mcp_path: str = MCP_PATH,
        auth: AuthStrategyName = "org_key",
        embed_secret: str | SecretStr | None = None,
        model_id: str | None = None,
        topic_name: str | None = None,
        query_all_views: bool = False,
        auto_pin_model: bool = True,
        protocol: ProtocolMode = "auto",
        timeout: float = 30.0,
        tool_timeout: float = 120.0,
        max_retries: int = 3,
        requests_per_minute: float | None = None,
        max_sessions: int = 1000,
        idle_seconds: float = 300.0,
        identity_ttl: float = 300.0,
        policy: ToolPolicy | None = None,
        artifacts: ArtifactStore | None = None,
        sandbox_data_dir: Path | None = None,
    ) -> None:
        """Describe the connection; nothing is opened before `async with`.

        Args:
            base_url: the Omni instance, e.g. `https://acme.omniapp.co`. With neither it nor `mcp_url`, the
                sandbox is started in-process when the connection opens.
            api_key: the organization API key (it may act for any user); never shown in a repr or an error.
            mcp_url: Omni's MCP endpoint; default `base_url` + `mcp_path`. Given alone, the REST base URL is
                its scheme and host.
            mcp_path: the MCP endpoint's path under `base_url` (and the sandbox's): `/mcp/https` or `/mcp`.
            auth: how MCP sessions act as their user: `org_key` (the API key plus `X-MCP-User-ID`) or
                `embed_token` (a per-user embed MCP token minted from `embed_secret` at `base_url/oauth/token`).
            embed_secret: the embed secret (`auth="embed_token"`); the embedded sandbox uses its own.
            model_id: pin one Omni model (`X-MCP-Model-ID`) for every user.
            topic_name: pin one topic (`X-MCP-Topic-Name`).
            query_all_views: send `X-MCP-Query-All-Views: true`.
            auto_pin_model: with no `model_id`, pin each user's model when their `pickModel` lists exactly one.
            protocol: how MCP sessions negotiate: `auto`, `legacy` or `modern`.
            timeout: seconds one REST request, and connecting an MCP session, may take.
            tool_timeout: the deadline of one tool call.
            max_retries: retries of a REST request on 429 and 5xx.
            requests_per_minute: the API key's budget of REST calls, shared by every client of the key in this
                process; `None`: Omni's 60, or a generous one on loopback (the sandbox, embedded or served).
            max_sessions: MCP sessions kept open at most (one per user).
            idle_seconds: an MCP session unused this long is closed.
            identity_ttl: how long an end user's resolved Omni id (and a reverse lookup) is reused.
            policy: which tools are offered to a model, and the result budget (used by `toolset`).
            artifacts: where full results are kept for `read_result`; default: in memory.
            sandbox_data_dir: where the embedded sandbox keeps its AI jobs and conversations across restarts
                (`from_settings`: `BRIDGE_DATA_DIR/sandbox`); `None`: in memory, forgotten when it stops.

        Raises:
            ConfigError: an Omni is named but no API key is given, or embed tokens are asked for without a secret.
        """
        if mcp_url is not None and base_url is None:
            parts = urlsplit(mcp_url)
            base_url = f"{parts.scheme}://{parts.netloc}"
        if base_url is not None and api_key is None:
            raise ConfigError("OMNI_API_KEY: an organization API key is required to act for Omni's users")
        if auth == "embed_token" and base_url is not None and embed_secret is None:
            raise ConfigError("OMNI_EMBED_SECRET: required with OMNI_AUTH=embed_token (it signs token requests)")
        if auth not in ("org_key", "embed_token"):
            raise ConfigError(f"OMNI_AUTH: must be org_key or embed_token, got {auth!r}")
        self.auth: AuthStrategyName = auth
        self._embed_secret = SecretStr(embed_secret) if isinstance(embed_secret, str) else embed_secret
        self._mcp_path = mcp_path
        # The profile each end user was last resolved with, which their embed token's claims carry.
        self._profiles: BoundedMap[str, EndUser] = BoundedMap(max_sessions * 4, ttl=identity_ttl * 4)
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._mcp_url = mcp_url
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.model_id = model_id
        self.topic_name = topic_name
        self.query_all_views = query_all_views
        self.auto_pin_model = auto_pin_model
        self._protocol: ProtocolMode = protocol
        self._timeout = timeout
        self._tool_timeout = tool_timeout
        self._max_retries = max_retries
        self._requests_per_minute = requests_per_minute
        self._max_sessions = max_sessions
        self._idle_seconds = idle_seconds
        self._identity_ttl = identity_ttl
        self.policy = policy or ToolPolicy()
        self.artifacts: ArtifactStore = artifacts if artifacts is not None else MemoryArtifactStore()
        self._sandbox_data_dir = sandbox_data_dir
        self._stack = contextlib.AsyncExitStack()
        self._open: _Open | None = None
        self._state: Literal["new", "open", "closed"] = "new"

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, sandbox: bool = False, **options: Any) -> Self:
        """A connection configured from `Settings` (`OMNI_*` and `BRIDGE_*` variables, or `.env`).

        Args:
            settings: the effective settings; default: `load_settings()`.
            sandbox: use the in-process sandbox even when `OMNI_BASE_URL` is set.
            **options: constructor arguments that win over the settings (e.g. `mcp_url`, `api_key`).

        Raises:
            ConfigError: `OMNI_BASE_URL` is set but `OMNI_API_KEY` is not.
        """
        settings = settings or load_settings()
        values: dict[str, Any] = {
            "model_id": settings.omni_model_id,
            "topic_name": settings.omni_topic_name,
            "query_all_views": settings.omni_query_all_views,
            "auto_pin_model": settings.bridge_auto_pin_model,
            "protocol": settings.omni_mcp_protocol,
            "mcp_path": settings.omni_mcp_path,
            "auth": settings.omni_auth,
            "timeout": settings.omni_timeout_seconds,
            "tool_timeout": settings.omni_tool_timeout_seconds,
            "max_retries": settings.omni_max_retries,
            "requests_per_minute": configured_budget(settings),
            "max_sessions": settings.bridge_max_sessions,
            "idle_seconds": settings.bridge_session_idle_seconds,
            "identity_ttl": settings.bridge_identity_ttl_seconds,
            "policy": ToolPolicy.from_settings(settings),
            "sandbox_data_dir": settings.bridge_data_dir / SANDBOX_DIR,
        }
        if not sandbox:
            values["api_key"] = settings.omni_api_key  # also for an MCP endpoint given as an option
            values["embed_secret"] = settings.omni_embed_secret
            if settings.omni_base_url is not None:
                base_url = str(settings.omni_base_url).rstrip("/")
                values.update(base_url=base_url, mcp_url=base_url + settings.omni_mcp_path)
        values.update(options)
        return cls(**values)

    def __repr__(self) -> str:
        where = "sandbox" if self._base_url is None else self._base_url
        return f"<OmniConnection {where} auth={self.auth} {self._state}>"

    def forget_expired(self) -> int:
        """Drop the expired identities and reverse lookups now (a task does it every so often); how many."""
        return self._parts.resolver.forget_expired()

    # --- lifecycle -----------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the connection has been entered and not yet closed."""
        return self._state == "open"

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"an OmniConnection can be entered once; this one is {self._state}")
        self._state = "open"
        stack = self._stack
        try:
            sandbox = None
            base_url, api_key, embed_secret = self._base_url, self._api_key, self._embed_secret
            if base_url is None:
                sandbox = Sandbox(SandboxConfig(data_dir=self._sandbox_data_dir))
                base_url = await stack.enter_async_context(sandbox.serve())
                api_key, embed_secret = SecretStr(sandbox.config.org_key), SecretStr(sandbox.config.embed_secret)
            assert api_key is not None  # the constructor refuses a base URL without a key
            mcp_url = self._mcp_url if self._mcp_url is not None and sandbox is None else base_url + self._mcp_path
            rest = await stack.enter_async_context(
                OmniRestClient(
                    base_url,
                    api_key,
                    timeout=self._timeout,
                    max_retries=self._max_retries,
                    requests_per_minute=self._requests_per_minute,
                )
            )
            pool = await stack.enter_async_context(
                SessionPool(
                    api_key=api_key,
                    auth=self.auth,
                    embed_secret=embed_secret,
                    token_url=base_url + EMBED_TOKEN_PATH,
                    protocol=self._protocol,
                    max_sessions=self._max_sessions,
                    idle_seconds=self._idle_seconds,
                    tool_timeout=self._tool_timeout,
                    connect_timeout=self._timeout,
                )
            )
            server = SANDBOX_SERVER if sandbox is not None else base_url
            # Upsert is decided per call by `resolve` (an EndUser with a profile), never by a resolver default.
            resolver = IdentityResolver(rest, server=server, ttl_seconds=self._identity_ttl, upsert=False)
            pins = None
            if self.auto_pin_model and self.model_id is None:
                pins = ModelPins(pool, ttl=self._identity_ttl, max_entries=self._max_sessions * 4)
            sweeper = asyncio.create_task(
                _forget_expired(resolver, pins, self._identity_ttl), name="omni-bridge identities"
            )
            stack.push_async_callback(_stop, sweeper)
        except BaseException:
            await stack.aclose()
            self._state = "closed"
            raise
        self._open = _Open(
            base_url=base_url,
            mcp_url=mcp_url,
            server=server,
            rest=rest,
            pool=pool,
            resolver=resolver,
            sandbox=sandbox,
            pins=pins,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every MCP session, the REST client and the sandbox (if this connection started it)."""
        self._open = None
        self._state = "closed"
        await self._stack.aclose()

    @property
    def _parts(self) -> _Open:
        if self._open is None:
            raise RuntimeError("the OmniConnection is not open; use `async with OmniConnection(...) as omni:`")
        return self._open

    @property
    def rest(self) -> OmniRestClient:
        """The REST client of the Omni this connection talks to (shared; do not close it)."""
        return self._parts.rest

    @property
    def pool(self) -> SessionPool:
        """The session pool every MCP call goes through."""
        return self._parts.pool

    @property
    def resolver(self) -> IdentityResolver:
        """The identity resolver (end user → Omni user, and back)."""
        return self._parts.resolver

    @property
    def mcp_url(self) -> str:
        """Omni's MCP endpoint (the sandbox's, when it stands in)."""
        return self._parts.mcp_url

    @property
    def base_url(self) -> str:
        """Omni's base URL (the sandbox's, when it stands in)."""
        return self._parts.base_url

    @property
    def server(self) -> str:
        """The label identities of this Omni carry: its base URL, or `SANDBOX_SERVER` for the embedded sandbox."""
        return self._parts.server

    @property
    def sandbox(self) -> Sandbox | None:
        """The in-process sandbox, when this connection started one."""
        return self._parts.sandbox

    # --- users ---------------------------------------------------------------------------------------------

    async def resolve(self, user: str | EndUser) -> OmniIdentity:
        """The Omni identity of `user` (cached): an external id that must exist, or an `EndUser`.

        An `EndUser` with a profile (name, groups, attributes, entity or email) is upserted first; with none,
        nothing is sent but the lookup. There is no default user.

        Raises:
            IdentityError: `user` is empty, or Omni has no embed user with that external id.
            OmniError: Omni refused the lookup or could not be reached.
        """
        end_user = user if isinstance(user, EndUser) else EndUser(external_id=user)
        identity = await self._parts.resolver.resolve(
            end_user.external_id,
            name=end_user.name,
            groups=end_user.groups,
            user_attributes=end_user.user_attributes,
            entity=end_user.entity,
            email=end_user.email,
            connection_roles=end_user.connection_roles,
            model_roles=end_user.model_roles,
            upsert=end_user.has_profile,
        )
        if end_user.has_profile:
            self._profiles.put(end_user.external_id, end_user)
        return identity

    async def external_id_for(self, user_id: str) -> str | None:
        """The external id of the embed user whose Omni id is `user_id` (cached), or `None` if Omni has none.

        Raises:
            OmniError: Omni refused the lookup or could not be reached.
        """
        return await self._parts.resolver.external_id_for(user_id)

    def key(self, user_id: str, *, principal: EmbedPrincipal | None = None) -> SessionKey:
        """The session key acting for the Omni user `user_id` (an Omni id, used as is) with the pinned scope.

        With `auth="embed_token"` a key needs the `principal` its token is minted for (`session_key` adds it).
        """
        return SessionKey(
            server=self._parts.mcp_url,
            user_id=user_id,
            model_id=self.model_id,
            topic_name=self.topic_name,
            query_all_views=self.query_all_views,
            principal=principal,
        )

    def session_key(self, identity: OmniIdentity) -> SessionKey:
        """The session key acting for a resolved `identity`, with the profile it was resolved with (`principal`).

        The principal is whom an embed token is minted for; under the org key it only keys the session, so a user
        upserted with other roles gets a tool list of their own at once instead of the cached one.
        """
        return self.key(identity.user_id, principal=self._principal(identity))

    def _principal(self, identity: OmniIdentity) -> EmbedPrincipal:
        """Whom `identity`'s embed token names: the profile it was last resolved with, else only its external id."""
        profile = self._profiles.get(identity.external_id)
        if profile is None:  # a plain external id: claims left out leave Omni's profile of the user as it is
            return EmbedPrincipal.of(identity.external_id)
        return EmbedPrincipal.of(
            identity.external_id,
            name=profile.name or identity.display_name,
            groups=profile.groups,
            user_attributes=profile.user_attributes,
            connection_roles=profile.connection_roles,
            model_roles=profile.model_roles,
            entity=profile.entity,
            email=profile.email,
        )

    async def toolset(self, user: str | EndUser | OmniIdentity, *, artifacts: ArtifactStore | None = None) -> Toolset:
        """Omni's tools for one end user, as a `Toolset` over the shared pool (`user` is resolved if need be).

        Every call through it uses that user's pooled MCP session; no session is opened per call or per run.
        `artifacts` (default: the connection's) is where full results are kept for `read_result`. With no
        model pinned and `auto_pin_model`, a user who may see exactly one model gets a session pinned to it.
        """
        identity = user if isinstance(user, OmniIdentity) else await self.resolve(user)
        store = artifacts if artifacts is not None else self.artifacts
        key = await self.pinned_key(self.session_key(identity))
        return Toolset(self._parts.pool, key, artifacts=store, policy=self.policy, rest=self._parts.rest)

    async def pinned_key(self, key: SessionKey) -> SessionKey:
        """`key` with its user's one model pinned, when auto-pinning applies and finds one; else `key` as is."""
        pins = self._parts.pins
        if pins is None or key.model_id is not None:
            return key
        model_id = await pins.model_for(key)
        return dataclasses.replace(key, model_id=model_id) if model_id is not None else key


async def _forget_expired(resolver: IdentityResolver, pins: ModelPins | None, ttl: float) -> None:
    """Sweep the resolver's (and the model pins') expired entries every so often: memory of idle users goes back."""
    interval = max(1.0, min(ttl, 60.0))
    while True:
        await asyncio.sleep(interval)
        resolver.forget_expired()
        if pins is not None:
            pins.forget_expired()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
