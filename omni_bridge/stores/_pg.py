"""The PostgreSQL driver's one import boundary, and the plumbing of `PostgresStore`: pool, schema, notifications.

Driver: psycopg 3 (`psycopg[binary]` with `psycopg_pool`), installed by the `postgres` extra, rather than
asyncpg, because:

- it ships type hints, so the stores stay mypy-strict clean without third-party stubs;
- LISTEN/NOTIFY is a plain async iterator on a connection (`conn.notifies()`), which one task can fan out
  to many waiters, instead of asyncpg's callbacks run outside any task;
- it speaks libpq's connection strings: every URL option libpq knows (`sslmode`, `options=-csearch_path%3D…`
  to keep the tables in their own schema, `PG*` variables, service files) works unchanged;
- `psycopg[binary]` is a wheel with libpq inside, so nothing needs compiling.

The driver is imported here only: omni-bridge installs and works without it, and importing this module without
it (which `open_store` does for a `postgresql://` URL) raises a `ConfigError` naming the extra to install.

Records are JSONB. PostgreSQL's text type cannot hold NUL characters, so `jsonb()` turns any `\\x00` inside a
string into U+FFFD rather than fail a save because a tool result carried a stray NUL byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from omni_bridge.exceptions import ConfigError

try:
    import psycopg
    from psycopg import AsyncConnection, sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.types.json import Jsonb
    from psycopg_pool import AsyncConnectionPool, PoolTimeout
except ImportError:
    raise ConfigError(
        "a postgresql:// store needs the PostgreSQL driver: install the `postgres` extra "
        "(pip install 'omni-bridge[postgres]')"
    ) from None

__all__ = ["AsyncConnection", "Database", "Notifications", "Schema", "describe_url", "jsonb", "one"]

logger = logging.getLogger(__name__)

_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS omni_bridge_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
_MIGRATION_LOCK = 7_204_551_130_001
"""`pg_advisory_xact_lock` key: workers starting together create the tables one after the other."""


def describe_url(url: str) -> str:
    """`postgresql://user@host:port/dbname`: the URL without its password or options, safe to log.

    Raises:
        ConfigError: `url` is not a PostgreSQL URL libpq can read (the message does not repeat it).
    """
    if not url.strip().lower().startswith(_SCHEMES):
        raise ConfigError("a PostgreSQL store URL starts with `postgresql://`")
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError("the PostgreSQL store URL is not valid (its text is not repeated here)") from None
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname') or ''}"


def _first_line(exc: BaseException) -> str:
    """The first line of a driver error: libpq's and the server's messages never carry the password."""
    return str(exc).strip().split("\n", 1)[0]


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def jsonb(value: Any) -> Jsonb:
    """Wrap a JSON-ready value (dicts, lists, strings, numbers) for a JSONB parameter."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:  # json.dumps always escapes NUL
        text = json.dumps(_without_nul(value), ensure_ascii=False, separators=(",", ":"))
    return Jsonb(value, dumps=lambda _: text)


async def one(conn: AsyncConnection[Any], query: LiteralString, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The first row of `query`, or `None`."""
    cursor = await conn.execute(query, params)
    row: tuple[Any, ...] | None = await cursor.fetchone()
    return row


@dataclass(frozen=True)
class Schema:
    """The tables of one component, created on first open; `version` is recorded in `omni_bridge_schema`."""

    component: str
    version: int
    statements: Sequence[LiteralString]
    """`CREATE … IF NOT EXISTS` statements, run in order in one transaction."""


class Database:
    """A connection pool on one PostgreSQL database, opened on first use, with the components' tables made.

    Args:
        url: a `postgresql://` URL (libpq syntax).
        schemas: the components whose tables to create when missing, in order.
        max_connections: the pool's size at most.
        open_timeout: seconds to wait for the first connection before giving up with a `ConfigError`.
    """

    def __init__(
        self, url: str, schemas: Sequence[Schema], *, max_connections: int = 10, open_timeout: float = 10.0
    ) -> None:
        self.description = describe_url(url)
        self._url = url
        self._schemas = tuple(schemas)
        self._max_connections = max_connections
        self._open_timeout = open_timeout
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Lock | None = None
        self.closed = False

    async def open(self) -> None:
        """Connect and create the tables if that has not happened yet.

        Raises:
            ConfigError: the database cannot be reached, or its tables were made by a newer omni-bridge.
            RuntimeError: the database was closed.
        """
        self._check_open()
        if self._pool is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            self._check_open()
            if self._pool is None:
                self._pool = await self._connect()

    async def _connect(self) -> AsyncConnectionPool:
        # One plain connection first: its error says why (refused, bad password) where a pool only times out.
        try:
            async with asyncio.timeout(self._open_timeout):
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        except (psycopg.OperationalError, TimeoutError) as exc:
            reason = _first_line(exc) or f"no answer within {self._open_timeout:g} s"
            raise ConfigError(f"cannot connect to the PostgreSQL store {self.description}: {reason}") from None
        component = self._schemas[0].component
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                await conn.execute(_SCHEMA_TABLE)
                for schema in self._schemas:
                    component = schema.component
                    await self._migrate(conn, schema)
        except psycopg.Error as exc:
            raise ConfigError(
                f"cannot set up the {component} tables in the PostgreSQL store {self.description}: {_first_line(exc)}"
            ) from None
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._max_connections,
            open=False,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
            name="omni-bridge store",
        )
        try:
            await pool.open(wait=True, timeout=self._open_timeout)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, PoolTimeout):
                raise ConfigError(
                    f"cannot open connections to the PostgreSQL store {self.description} "
                    f"within {self._open_timeout:g} s"
                ) from None
            raise
        return pool

    async def _migrate(self, conn: AsyncConnection[Any], schema: Schema) -> None:
        row = await one(conn, "SELECT version FROM omni_bridge_schema WHERE component = %s", (schema.component,))
        if row is not None and row[0] > schema.version:
            raise ConfigError(
                f"the PostgreSQL store {self.description} has {schema.component} schema version {row[0]}, "
                f"newer than this omni-bridge knows ({schema.version}); upgrade omni-bridge"
            )
        for statement in schema.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO omni_bridge_schema (component, version) VALUES (%s, %s) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (schema.component, schema.version),
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection inside a transaction, committed when the block ends without an error."""
        async with self._pooled() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection in autocommit mode, for reads."""
        async with self._pooled() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _pooled(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection from the pool, or the `CancelledError` of a cancel that came while waiting for one.

        psycopg_pool waits for a connection with `asyncio.wait_for`, which on Python 3.11 returns normally when
        a cancel lands just as the connection is handed over (CPython gh-86296): the caller would go on as if
        it had not been cancelled (a lease watcher renewing for ever, a stopped run answering in full). The
        cancel still counts in `Task.cancelling()`, so one asked during the wait is raised here, the connection
        going back to the pool. A delivered cancel never gets here, so nothing is raised twice.
        """
        pool = await self._open_pool()
        task = asyncio.current_task()
        asked = 0 if task is None else task.cancelling()
        async with pool.connection() as conn:
            if task is not None and task.cancelling() > asked:
                raise asyncio.CancelledError
            yield conn

    async def _open_pool(self) -> AsyncConnectionPool:
        await self.open()
        assert self._pool is not None  # `open` either set it or raised
        return self._pool

    async def aclose(self) -> None:
        """Close the pool; closing twice is harmless."""
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"the PostgreSQL store {self.description} is closed")

    def notifications(self, channel: str, *, listen_cap: float) -> Notifications:
        """A listener on `channel` using this database's URL (started by `Notifications.start`)."""
        return Notifications(self._url, channel, self.description, listen_cap=listen_cap)


class Notifications:
    """One LISTEN connection per store, fanning each NOTIFY payload out to the tasks waiting for it.

    While the connection is down (the database restarted, say) waiters are woken every `POLL_SECONDS` so that
    they re-read instead of missing a change, and the listener reconnects in the background. While it is up, a
    waiter sleeps `listen_cap` seconds at most: that bounds the delay when a NOTIFY came between the caller's
    read and its wait (the store cannot know what the caller last read).
    """

    POLL_SECONDS = 0.25
    """A waiter's longest sleep while nothing listens."""

    def __init__(self, url: str, channel: str, description: str, *, listen_cap: float = 2.0) -> None:
        self._listen_cap = listen_cap
        self._url = url
        self._channel = channel
        self._description = description
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def start(self, *, seconds: float) -> None:
        """Start the listener task and wait (at most `seconds`) until it listens; later it reconnects alone."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"omni-bridge LISTEN {self._channel}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._listening.wait()

    async def wait(self, key: str, *, seconds: float) -> None:
        """Return when a notification with payload `key` arrives, or after `seconds` (capped, see above)."""
        cap = self._listen_cap if self.listening else self.POLL_SECONDS
        event = asyncio.Event()
        waiters = self._waiters.setdefault(key, set())
        waiters.add(event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(seconds, cap))):
                    await event.wait()
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(key, None)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()

    def _wake(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            except psycopg.Error as exc:
                logger.warning("cannot LISTEN on %s (%s); retrying in %.1f s", self._description, exc, backoff)
            else:
                try:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening.set()
                    backoff = 0.1
                    # Anything may have changed while nothing listened: let every waiter re-read.
                    self._wake_all()
                    async for notify in conn.notifies():
                        self._wake(notify.payload)
                except psycopg.Error as exc:
                    logger.warning("lost the LISTEN connection to %s (%s); reconnecting", self._description, exc)
                finally:
                    self._listening.clear()
                    self._wake_all()
                    await conn.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
