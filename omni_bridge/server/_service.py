"""`Service`: everything one worker of the HTTP service holds, opened and closed together.

One `Service` per worker process: the service keys, one store (`omni_bridge.stores`: a SQLite file by
default, PostgreSQL for several workers) that is both the `Bridge`'s conversation store and the runner's
service store, the `ResponseRunner` that answers on this worker, a reaper that ends the runs of dead workers
(`expire_leases`), and the retention pass that deletes what is older than `BRIDGE_RETENTION_DAYS`. It is an
async context manager (the app's lifespan enters it); shutting down stops taking new questions, ends the runs
of this worker as `canceled` with a clear error, then closes the bridge and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import UTC, datetime

import anthropic
from starlette.requests import Request

from omni_bridge.agent import Bridge
from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.server._admission import Admission
from omni_bridge.server._auth import ServiceKeys, is_loopback, owner_from_request
from omni_bridge.server._envelope import ApiError
from omni_bridge.server._retention import QuietRelease, Retention
from omni_bridge.server._runner import ResponseRunner
from omni_bridge.server._sse import HEARTBEAT_SECONDS, Followers
from omni_bridge.server._tasks import stop_task
from omni_bridge.server._tenants import TenantPolicy
from omni_bridge.stores import Owner, Store, open_store, store_location
from omni_bridge.types import EngineName

__all__ = ["Service"]

log = logging.getLogger("omni_bridge.server")


class Service:
    """One worker of the HTTP service (see the module docstring).

    The parts are built here (a SQLite file is opened at once, so a bad path fails before the server starts)
    and started by `start()` / `async with`, so routes can be built from the service before it runs.

    Args:
        settings: the configuration.
        host: the interface the server listens on; with no `BRIDGE_SERVICE_KEYS`, a loopback host (or the
            embedded sandbox) lets the service make a development key instead of refusing to start.
        worker_id: this worker's name in leases (default: host name, process id and a random suffix).
        store: a store to use instead of opening the configured one (the caller closes it); the bridge keeps
            its conversations there too.
        anthropic_client: passed to the `Bridge` (tests, gateways).

    Raises:
        ConfigError: no service keys while listening beyond loopback on a real Omni; a bad key list, tenant policy
            (`BRIDGE_TENANTS`) or store URL; a store that cannot be opened.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        worker_id: str | None = None,
        store: Store | None = None,
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
        self.tenants = TenantPolicy.parse(settings.bridge_tenants, self.keys.tenants)
        """How each tenant's end users map to Omni users, and which tenants may write profiles."""
        self.location = store_location(settings)
        self.lease_seconds = settings.bridge_lease_seconds
        self.reap_seconds = max(0.2, min(5.0, self.lease_seconds / 3))
        """How often this worker ends the runs of dead workers."""
        self.sse_heartbeat_seconds = HEARTBEAT_SECONDS
        """Quiet seconds after which an event stream sends a comment line."""
        self.followers = Followers()
        """The event streams open on this worker, per end user (at most `MAX_STREAMS_PER_USER` each)."""
        self._owns_store = store is None
        """Whether the store was opened here (then entered by `start` and closed by `aclose`)."""
        self.store: Store = open_store(self.location) if store is None else store
        self.bridge = Bridge(settings, store=self.store, anthropic_client=anthropic_client)
        self.runner = ResponseRunner(
            self.store, self.bridge, worker_id=self.worker_id, lease_seconds=self.lease_seconds
        )
        self.admission = Admission.from_settings(self.store, settings)
        """The caps on answers in flight per end user and per tenant, counted in the store (shared by workers)."""
        self.retention = Retention(self.store, settings.bridge_retention_days)
        """Deletes old records at start and hourly (`BRIDGE_RETENTION_DAYS`; 0 keeps everything)."""
        idle = max(settings.bridge_session_idle_seconds, settings.bridge_identity_ttl_seconds)
        self.memory = QuietRelease(lambda: bool(self.runner.running), quiet_seconds=2 * idle + 5)
        """Gives the memory of users gone idle back to the system once this worker has been quiet a while."""
        self.runner.on_finished(self._answered)
        self.closing = False
        """True once shutdown has begun: no new responses are taken, event streams end."""
        self._started = False
        self._stack = contextlib.AsyncExitStack()
        self._reaper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "closing" if self.closing else ("running" if self._started else "not started")
        return f"<Service worker={self.worker_id!r} store={self.location} {state}>"

    # --- what routes use ----------------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Owner:
        """The owner the request acts for.

        Raises:
            ApiError: 401 without a valid service key, 400 without a usable `X-Bridge-User`.
        """
        return owner_from_request(request, self.keys)

    def check_accepting(self) -> None:
        """Raises `ApiError` 503 unless the service is running and not shutting down."""
        if self.closing or not self._started:
            raise ApiError(503, "unavailable", "the service is shutting down; send the request to another worker")

    def engine_for(self, requested: EngineName | None) -> EngineName:
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
        """Open the store and the bridge, start the reaper."""
        if self._started or self.closing:
            raise RuntimeError("a service starts once")
        stack = self._stack
        try:
            if self._owns_store:
                await stack.enter_async_context(self.store)
            await stack.enter_async_context(self.bridge)
            stack.push_async_callback(self.runner.aclose)
        except BaseException:
            await stack.aclose()
            raise
        self._started = True
        self._reaper = asyncio.create_task(self._reap(), name="lease reaper")
        self.retention.start()
        self.memory.start()
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
        """Stop taking questions, end this worker's runs as `canceled`, close the bridge and the store."""
        self.begin_shutdown()
        await self.retention.stop()
        await self.memory.stop()
        if self._reaper is not None:
            # Bounded: a cancel lost inside a pooled call must not hold the shutdown (see `server/_tasks.py`).
            await stop_task(self._reaper, grace=1.0, name="the lease reaper")
            self._reaper = None
        if self._stopping is not None:
            await self._stopping
        await self._stack.aclose()
        if not self._started and self._owns_store:
            # Built but never started: the store opened by the constructor is closed here.
            await self.store.aclose()

    async def _answered(self, _response: object) -> None:
        self.memory.activity()

    async def _reap(self) -> None:
        """End the runs whose worker stopped renewing its lease (this one's included), every `reap_seconds`."""
        while not self.closing:
            await asyncio.sleep(self.reap_seconds)
            try:
                expired = await self.store.expire_leases(datetime.now(UTC))
            except Exception:
                log.exception("the lease reaper failed; trying again")
                continue
            for response in expired:
                log.warning("response %s ended as worker_lost (worker %s)", response.id, response.worker)
                self.runner.notify_finished(response)
