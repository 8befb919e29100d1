"""`Service`: everything one worker of the HTTP service holds, opened and closed together.

One `Service` per worker process: the service keys, the `ServiceStore` (SQLite by default, PostgreSQL for
several workers), the `Bridge` with its conversation store on the same backend, the `ResponseRunner` that
answers on this worker, and a reaper that ends the runs of dead workers (`expire_leases`). It is an async
context manager (the app's lifespan enters it); shutting down stops taking new questions, ends the runs of
this worker as `canceled` with a clear error, then closes the bridge and the stores.

The PostgreSQL classes are imported only when a `postgresql://` store is configured, so the driver is an
optional dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anthropic
from starlette.requests import Request

from omni_bridge.agent._bridge import Bridge
from omni_bridge.agent.stores import ConversationStore, SqliteConversationStore
from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.server._auth import ServiceKeys, is_loopback, owner_from_request
from omni_bridge.server._envelope import ApiError
from omni_bridge.server._records import Owner
from omni_bridge.server._runner import ResponseRunner
from omni_bridge.server._sqlite_store import SqliteServiceStore
from omni_bridge.server._sse import HEARTBEAT_SECONDS
from omni_bridge.server._store import ServiceStore

__all__ = ["CONVERSATIONS_FILE", "SERVICE_FILE", "Service", "StoreLocation", "store_location"]

log = logging.getLogger("omni_bridge.server")

SERVICE_FILE = "service.db"
"""The SQLite file of the service store in `BRIDGE_DATA_DIR` when `BRIDGE_STORE_URL` is unset."""
CONVERSATIONS_FILE = "conversations.db"
"""The SQLite file, in `BRIDGE_DATA_DIR`, of the bridge's conversations beside a SQLite service store."""


class StoreLocation:
    """Where the service keeps its records: a SQLite file, or a PostgreSQL URL (shown without its password)."""

    def __init__(self, kind: Literal["sqlite", "postgresql"], target: str) -> None:
        self.kind = kind
        self._target = target

    @property
    def path(self) -> Path:
        assert self.kind == "sqlite"
        return Path(self._target).expanduser()

    @property
    def url(self) -> str:
        assert self.kind == "postgresql"
        return self._target

    def __str__(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite {self.path}"
        rest = self._target.split("://", 1)[1]
        host = rest.rsplit("@", 1)[-1]  # never the user:password part
        return f"PostgreSQL {host.split('?', 1)[0]}"

    def __repr__(self) -> str:
        return f"<StoreLocation {self}>"


def store_location(settings: Settings) -> StoreLocation:
    """Read `BRIDGE_STORE_URL`: unset, a path, `sqlite:///…` or `postgresql://…`.

    Raises:
        ConfigError: another scheme (only the scheme is named: the rest may hold a password).
    """
    value = (settings.bridge_store_url or "").strip()
    if not value:
        return StoreLocation("sqlite", str(settings.bridge_data_dir / SERVICE_FILE))
    if value.startswith(("postgresql://", "postgres://")):
        return StoreLocation("postgresql", value)
    if value.startswith("sqlite:"):
        if not value.startswith("sqlite:///") or value == "sqlite:///":
            raise ConfigError(
                "BRIDGE_STORE_URL: a SQLite URL reads `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`"
            )
        return StoreLocation("sqlite", value.removeprefix("sqlite:///"))
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ConfigError(
            f"BRIDGE_STORE_URL: unknown store {scheme}://; use a file path, `sqlite:///path.db` or `postgresql://…`"
        )
    return StoreLocation("sqlite", value)


def _postgres(location: StoreLocation) -> tuple[Any, Any]:
    """The PostgreSQL service and conversation stores (not yet opened), imported on demand."""
    try:
        service_module = importlib.import_module("omni_bridge.server._postgres_store")
        conversation_module = importlib.import_module("omni_bridge.agent._postgres")
        return (
            service_module.PostgresServiceStore(location.url),
            conversation_module.PostgresConversationStore(location.url),
        )
    except ImportError as exc:
        raise ConfigError(
            f"BRIDGE_STORE_URL: a PostgreSQL store needs the PostgreSQL support installed "
            f"(`pip install 'omni-bridge[postgres]'`): {exc.msg}"
        ) from None


class Service:
    """One worker of the HTTP service (see the module docstring).

    The parts are built here (a SQLite file is opened at once, so a bad path fails before the server starts)
    and started by `start()` / `async with`, so routes can be built from the service before it runs.

    Args:
        settings: the configuration.
        host: the interface the server listens on; with no `BRIDGE_SERVICE_KEYS`, a loopback host (or the
            embedded sandbox) lets the service make a development key instead of refusing to start.
        worker_id: this worker's name in leases (default: host name, process id and a random suffix).
        store: a service store to use instead of opening the configured one (the caller closes it).
        conversation_store: a conversation store for the bridge instead of the configured one (the caller
            closes it).
        anthropic_client: passed to the `Bridge` (tests, gateways).

    Raises:
        ConfigError: no service keys while listening beyond loopback on a real Omni; a bad key list or store URL;
            a store that cannot be opened.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        worker_id: str | None = None,
        store: ServiceStore | None = None,
        conversation_store: ConversationStore | None = None,
        anthropic_client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.dev_key: str | None = None
        """The key made at start when none is configured (development only); shown on the web page."""
        if settings.bridge_service_keys is not None:
            self.keys = ServiceKeys.parse(settings.bridge_service_keys.get_secret_value())
        elif settings.uses_sandbox or (host is not None and is_loopback(host)):
            self.keys, self.dev_key = ServiceKeys.development()
        else:
            raise ConfigError(
                "BRIDGE_SERVICE_KEYS: required when the service listens beyond loopback on a real Omni; "
                "set it to `name:key` pairs (e.g. `acme:<long random key>`), the name being the tenant"
            )
        self.location = store_location(settings)
        self.lease_seconds = settings.bridge_lease_seconds
        self.reap_seconds = max(0.2, min(5.0, self.lease_seconds / 3))
        """How often this worker ends the runs of dead workers."""
        self.sse_heartbeat_seconds = HEARTBEAT_SECONDS
        """Quiet seconds after which an event stream sends a comment line."""
        self._owned: list[Any] = []
        """The stores this service opened, entered by `start` and closed by `aclose`."""
        self.store: ServiceStore
        self.store, conversations = self._stores(store, conversation_store)
        self.bridge = Bridge(settings, store=conversations, anthropic_client=anthropic_client)
        self.runner = ResponseRunner(
            self.store, self.bridge, worker_id=self.worker_id, lease_seconds=self.lease_seconds
        )
        self.closing = False
        """True once shutdown has begun: no new responses are taken, event streams end."""
        self._started = False
        self._stack = contextlib.AsyncExitStack()
        self._reaper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "closing" if self.closing else ("running" if self._started else "not started")
        return f"<Service worker={self.worker_id!r} store={self.location} {state}>"

    def _stores(
        self, store: ServiceStore | None, conversations: ConversationStore | None
    ) -> tuple[ServiceStore, ConversationStore]:
        if self.location.kind == "postgresql" and (store is None or conversations is None):
            pg_store, pg_conversations = _postgres(self.location)
            if store is None:
                store = pg_store
                self._owned.append(pg_store)
            if conversations is None:
                conversations = pg_conversations
                self._owned.append(pg_conversations)
        if store is None:
            sqlite_store = SqliteServiceStore(self.location.path)
            self._owned.append(sqlite_store)
            store = sqlite_store
        if conversations is None:
            conversations = SqliteConversationStore(self.settings.bridge_data_dir / CONVERSATIONS_FILE)
            self._owned.append(conversations)
        return store, conversations

    # --- what routes use ----------------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Owner:
        """The owner the request acts for.

        Raises:
            ApiError: 401 without a valid service key, 400 without a usable `X-Bridge-User`.
        """
        return owner_from_request(request, self.keys)

    def start_deadline(self) -> datetime:
        """When a response queued now must have been claimed: a worker that dies between accepting a question
        and starting its run leaves it queued, and `expire_leases` ends it as lost after this."""
        return datetime.now(UTC) + timedelta(seconds=self.settings.bridge_lease_seconds)

    def check_accepting(self) -> None:
        """Raises `ApiError` 503 unless the service is running and not shutting down."""
        if self.closing or not self._started:
            raise ApiError(503, "unavailable", "the service is shutting down; send the request to another worker")

    def engine_for(self, requested: Literal["claude", "omni"] | None) -> Literal["claude", "omni"]:
        """The engine of a new thread: `requested`, else the configured one; 400 when it cannot answer here."""
        engine = requested or self.settings.effective_engine()
        if engine not in self.bridge.engine_names():
            raise ApiError(
                400, "engine_unavailable", f"the {engine!r} engine is not available here (it needs ANTHROPIC_API_KEY)"
            )
        return engine

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the stores and the bridge, start the reaper."""
        if self._started or self.closing:
            raise RuntimeError("a service starts once")
        stack = self._stack
        try:
            for owned in self._owned:
                await stack.enter_async_context(owned)
            await stack.enter_async_context(self.bridge)
            stack.push_async_callback(self.runner.aclose)
        except BaseException:
            await stack.aclose()
            raise
        self._started = True
        self._reaper = asyncio.create_task(self._reap(), name="lease reaper")
        if self.dev_key is not None:
            log.warning(
                "no BRIDGE_SERVICE_KEYS: a development key was made for this run (the web page at / uses it); "
                "set BRIDGE_SERVICE_KEYS before serving anyone else"
            )
        log.info("service worker %s started; store: %s", self.worker_id, self.location)

    def begin_shutdown(self) -> None:
        """Stop taking questions and stop this worker's runs now, so event streams end and the server can stop.

        Called on the loop when the server is told to exit, before it waits for open connections.
        """
        if self.closing:
            return
        self.closing = True
        if self._started:
            self._stopping = asyncio.get_running_loop().create_task(self.runner.aclose())

    async def aclose(self) -> None:
        """Stop taking questions, end this worker's runs as `canceled`, close the bridge and the stores."""
        self.begin_shutdown()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._stopping is not None:
            await self._stopping
        await self._stack.aclose()
        if not self._started:
            # Built but never started: the stores opened by the constructor are closed here.
            for owned in self._owned:
                await owned.aclose()

    async def _reap(self) -> None:
        """End the runs whose worker stopped renewing its lease (this one's included), every `reap_seconds`."""
        while True:
            await asyncio.sleep(self.reap_seconds)
            try:
                expired = await self.store.expire_leases(datetime.now(UTC))
            except Exception:
                log.exception("the lease reaper failed; trying again")
                continue
            for response in expired:
                log.warning("response %s ended as worker_lost (worker %s)", response.id, response.worker)
                self.runner.notify_finished(response)
