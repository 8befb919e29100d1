"""Where the records live (`BRIDGE_STORE_URL`, else one file in `BRIDGE_DATA_DIR`), and the one call that opens it.

| `BRIDGE_STORE_URL` | store |
|---|---|
| unset | `SqliteStore` at `BRIDGE_DATA_DIR/bridge.db` (built from the older `conversations.db` and `service.db`) |
| `sqlite:///relative/file.db`, `sqlite:////absolute/file.db`, a plain path | `SqliteStore` at that file |
| `postgresql://…`, `postgres://…` | `PostgresStore` on one pool (needs the `postgres` extra) |
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.stores._protocol import Store
from omni_bridge.stores._sqlite_migration import migrate_legacy_files
from omni_bridge.stores._sqlite_store import SqliteStore
from omni_bridge.stores._sqlite_tables import SETTING

__all__ = ["STORE_FILE", "StoreLocation", "open_store", "store_location"]

STORE_FILE = "bridge.db"
"""The SQLite file in `BRIDGE_DATA_DIR` when `BRIDGE_STORE_URL` is unset."""
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreLocation:
    """Where the records are kept: a SQLite file, or a PostgreSQL URL (shown without its password).

    `default` marks the file of `BRIDGE_DATA_DIR` chosen when `BRIDGE_STORE_URL` is unset: the one place where
    the two files of older versions are looked for and moved in.
    """

    def __init__(self, kind: Literal["sqlite", "postgresql"], target: str, *, default: bool = False) -> None:
        self.kind = kind
        self.default = default
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
        return StoreLocation("sqlite", str(settings.bridge_data_dir / STORE_FILE), default=True)
    return _parse(value)


def _parse(value: str) -> StoreLocation:
    if value.lower().startswith(_POSTGRES_SCHEMES):
        return StoreLocation("postgresql", value)
    if value.startswith("sqlite:"):
        if not value.startswith("sqlite:///") or value == "sqlite:///":
            raise ConfigError(
                f"{SETTING}: a SQLite URL reads `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`"
            )
        return StoreLocation("sqlite", value.removeprefix("sqlite:///"))
    if value in ("memory:", "memory://"):
        raise ConfigError(
            f"{SETTING}: `memory:` is not a durable store (a `Bridge` given no store keeps its conversations in "
            "memory); use a file path, `sqlite:///path/to/file.db` or `postgresql://…`"
        )
    if "://" in value or not value:
        scheme = value.split("://", 1)[0] if value else ""
        raise ConfigError(
            f"{SETTING}: unknown store {scheme + '://' if scheme else '(empty)'}; "
            "use a file path, `sqlite:///path/to/file.db` or `postgresql://…`"
        )
    return StoreLocation("sqlite", value)


def open_store(where: Settings | StoreLocation | str | os.PathLike[str]) -> Store:
    """Open the store `where` names: the configured one (`Settings`), a `StoreLocation`, a URL or a file path.

    A SQLite file is opened at once (a bad path fails here); a PostgreSQL store connects on first use or on
    `async with`. The same object serves the `Bridge` (as its conversation store) and the HTTP service.

    Raises:
        ConfigError: an unknown scheme; a SQLite file that cannot be opened; a PostgreSQL URL without the
            `postgres` extra installed.
    """
    if isinstance(where, Settings):
        location = store_location(where)
    elif isinstance(where, StoreLocation):
        location = where
    elif isinstance(where, str):
        location = _parse(where.strip())
    else:
        location = StoreLocation("sqlite", os.fspath(where))
    if location.kind == "postgresql":
        # Imported here: the driver is an optional extra, and `_pg` says which one when it is missing.
        from omni_bridge.stores._pg_store import PostgresStore

        return PostgresStore(location.url)
    if location.default:
        migrate_legacy_files(location.path)
    return SqliteStore(location.path)
