"""`Sandbox`: the Omni look-alike as one object, an ASGI app plus ways to put it on a port.

Two ways to run it without a second terminal: `async with sandbox.serve() as url:` inside a running event
loop, or `with sandbox.run_in_thread() as url:` from synchronous code such as a pytest session fixture
(a server inside the test's own loop would stop whenever that loop does).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from omni_bridge._serving import serve_asgi, serve_asgi_in_thread
from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._capabilities import CAPABILITIES
from omni_bridge.sandbox._dataset import DEFAULT_TODAY
from omni_bridge.sandbox._demo_copies import demo_database
from omni_bridge.sandbox._directory import Directory
from omni_bridge.sandbox._docs import DocsIndex
from omni_bridge.sandbox._embed_tokens import EmbedTokens
from omni_bridge.sandbox._faults import Faults, Stats
from omni_bridge.sandbox._gate import CALLER_STATE, McpGate, RateLimiter
from omni_bridge.sandbox._job_rules import CreditLimit
from omni_bridge.sandbox._job_store import STORE_FILE, JobStore
from omni_bridge.sandbox._jobs import JobEngine
from omni_bridge.sandbox._mcp_mount import LazyMcpApp
from omni_bridge.sandbox._oauth import TOKEN_PATH, token_grant
from omni_bridge.sandbox._rest import rest_routes

if TYPE_CHECKING:
    from mcp.server import ServerRequestContext

    from omni_bridge.sandbox._mcp import McpTools

__all__ = ["EMBED_MCP_PATH", "MCP_PATH", "Sandbox", "SandboxConfig"]

MCP_PATH = "/mcp/https"
EMBED_MCP_PATH = "/mcp"
"""The MCP URL of Omni's embed guide (`https://<instance>.embed-omniapp.co/mcp`); the sandbox serves both paths
through the same gate and session manager, so a session opened on one is the same session on the other."""


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox behaves. The keys are demo values, not secrets, but are still kept out of reprs."""

    org_key: str = field(default="omni-sandbox-org-key", repr=False)
    personal_token: str = field(default="omni-sandbox-personal-token", repr=False)
    embed_secret: str = field(default="omni-sandbox-embed-secret-not-for-production", repr=False)
    """Signs the JWT assertions of the embed MCP token grant (`/oauth/token`, HS256)."""
    embed_token_seconds: float = 86_400.0
    """Lifetime of an issued embed MCP token (Omni: the embed session length, 24 h by default)."""
    capabilities: frozenset[str] = frozenset(CAPABILITIES)
    """Omni's MCP capability settings that are on. Omni ships `single_shot` off; the sandbox turns it on so
    `getData` is there to try (pass `frozenset({"agentic", "docs_search"})` for Omni's defaults)."""
    omni_agent_enabled: bool = True
    """False: query and docs tools are listed but answer `403 Feature is not enabled`, as Omni does."""
    today: date = DEFAULT_TODAY
    job_step_seconds: float = 0.2
    seed: int = 7
    session_idle_timeout: float = 600.0
    data_dir: Path | None = None
    """Where AI jobs and conversations are kept (`<data_dir>/sandbox.db`) across restarts; `None`: in memory."""
    ai_credit_limit: int | None = None
    """AI jobs that may run before new ones are denied (`job.denied`); `None`: no limit."""
    ai_credit_limit_per: Literal["org", "user"] = "org"
    webhook_on_cancel: bool = False
    """Sandbox-only: also send a terminal webhook for a cancelled job (Omni documents none)."""

    def __post_init__(self) -> None:
        unknown = set(self.capabilities) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {list(CAPABILITIES)}")
        if self.job_step_seconds < 0:
            raise ValueError("job_step_seconds must not be negative")
        if self.embed_token_seconds <= 0:
            raise ValueError("embed_token_seconds must be positive")
        if len(self.embed_secret.encode()) < 32:
            raise ValueError("embed_secret must be at least 32 bytes (HS256 keys shorter than the hash are weak)")
        self.credit_limit()  # a bad limit fails here, not at the first job

    def credit_limit(self) -> CreditLimit | None:
        """The AI credit limit these settings ask for."""
        if self.ai_credit_limit is None:
            return None
        return CreditLimit(self.ai_credit_limit, self.ai_credit_limit_per)


class Sandbox:
    """A local Omni: MCP at `/mcp/https` and `/mcp`, the REST API, the embed MCP token grant, demo data with
    row-level security."""

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", allowed_hosts: Sequence[str] = ()
    ) -> None:
        """`host` is the interface it will serve on: on loopback, MCP requests must name a loopback `Host` and
        `Origin` (others get 421/403, a DNS-rebinding defence); off loopback that check is off unless
        `allowed_hosts` names the hosts to accept (any port, or `name:port`) besides loopback ones."""
        self.config = config or SandboxConfig()
        self.conn = demo_database(self.config.seed, self.config.data_dir)
        self.directory = Directory(
            org_key=self.config.org_key,
            personal_token=self.config.personal_token,
            tokens=EmbedTokens(lifetime_seconds=self.config.embed_token_seconds),
        )
        self.faults = Faults()
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.docs = DocsIndex()
        data_dir = self.config.data_dir
        self.jobs = JobEngine(
            self.conn,
            today=self.config.today,
            step_seconds=self.config.job_step_seconds,
            store=JobStore(data_dir / STORE_FILE if data_dir is not None else None),
            credit_limit=self.config.credit_limit(),
            webhook_on_cancel=self.config.webhook_on_cancel,
        )
        self._host, self._allowed_hosts = host, tuple(allowed_hosts)
        self._mcp = LazyMcpApp(self._build_mcp)  # `mcp` is imported on the first MCP request, not here
        self._gate = McpGate(
            self._mcp, directory=self.directory, faults=self.faults, stats=self.stats, limiter=self.limiter
        )
        routes = [
            Route(MCP_PATH, endpoint=self._gate),
            Route(EMBED_MCP_PATH, endpoint=_AtPath(self._gate, MCP_PATH)),
            Route(TOKEN_PATH, endpoint=self._token_grant, methods=["POST"]),
            *rest_routes(self),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            async with self._mcp.lifespan():
                try:
                    yield
                finally:
                    await self.jobs.aclose()

        self.app: ASGIApp = Starlette(routes=routes, lifespan=lifespan)
        self.url: str | None = None

    @functools.cached_property
    def tools(self) -> McpTools:
        """Omni's MCP tools as this sandbox serves them (made on first use: see `LazyMcpApp`)."""
        from omni_bridge.sandbox._mcp import McpTools

        return McpTools(
            conn=self.conn,
            jobs=self.jobs,
            docs=self.docs,
            faults=self.faults,
            stats=self.stats,
            today=self.config.today,
            capabilities=self.config.capabilities,
            omni_agent_enabled=self.config.omni_agent_enabled,
            caller_of=_caller_of,
        )

    def _build_mcp(self) -> tuple[Any, ASGIApp]:
        from omni_bridge._host_check import host_check

        server = self.tools.server(middleware=[self._count_sessions])
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            transport_security=host_check(self._host, self._allowed_hosts),
            session_idle_timeout=self.config.session_idle_timeout,
        )
        return server, app

    def __repr__(self) -> str:
        return f"<Sandbox url={self.url!r} users={len(list(self.directory.all_users()))}>"

    # --- knobs -------------------------------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> None:
        """Change fault knobs by name (see `Faults`); unknown names or bad values raise `ValueError`."""
        self.faults.update(**changes)

    def fault_settings(self) -> dict[str, Any]:
        return self.faults.as_dict()

    def set_ai_credit_limit(self, jobs: int | None, per: Literal["org", "user"] = "org") -> None:
        """Let at most `jobs` AI jobs run (in the organization, or per user), counting every job the sandbox
        keeps; later ones are denied. `None` lifts the limit."""
        self.jobs.credit_limit = None if jobs is None else CreditLimit(jobs, per)

    def forget_conversations(self) -> int:
        """Forget every AI conversation and job, as an Omni that purged them would; how many conversations."""
        return self.jobs.forget_conversations()

    def revoke_embed_tokens(self) -> int:
        """Revoke every embed MCP token issued so far (how many): the next request bearing one gets 401."""
        return self.directory.tokens.revoke_all()

    def expire_embed_tokens(self) -> int:
        """Expire every live embed MCP token now (how many), as if its lifetime had passed."""
        return self.directory.tokens.expire_all()

    async def _token_grant(self, request: Request) -> Response:
        return await token_grant(self, request)

    def drop_sessions(self) -> int:
        """Expire every legacy MCP session: clients get `Session not found` on their next request."""
        return self._gate.drop_sessions()

    async def _count_sessions(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        if ctx.method in ("initialize", "server/discover"):
            self.stats.session_opened(_caller_of(ctx).user.id)
        return await call_next(ctx)

    # --- serving -----------------------------------------------------------------------------------------

    def mcp_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the sandbox is not serving; use serve() or run_in_thread() first")
        return self.url + MCP_PATH

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on the running loop; yields the base URL (`http://127.0.0.1:<port>`)."""
        async with serve_asgi(self.app, host, port) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None

    @contextlib.contextmanager
    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve from a background thread with its own loop; yields the base URL."""
        with serve_asgi_in_thread(self.app, host, port) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None


class _AtPath:
    """`app` served as if the request had come to `path` (the MCP app routes on its own path). A class, not a
    function, because Starlette's `Route` treats a plain function as a request/response endpoint."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self._app = app
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app({**scope, "path": self._path, "raw_path": self._path.encode()}, receive, send)


def _caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The caller the HTTP gate admitted for this MCP request."""
    request = ctx.request
    caller = request.scope.get("state", {}).get(CALLER_STATE) if request is not None else None
    if not isinstance(caller, Caller):
        from mcp.shared.exceptions import MCPError

        raise MCPError(-32000, "Unauthorized: the sandbox serves MCP over HTTP only, with an API key")
    return caller
