"""Opening a SQLite store file the same way everywhere: directory made, WAL, a busy timeout, the schema migrated,
and every failure turned into a `ConfigError` that names the file (and the setting behind it, when there is one).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from omni_bridge.exceptions import ConfigError

__all__ = ["open_sqlite"]


def open_sqlite(
    path: Path, *, what: str, migrate: Callable[[sqlite3.Connection, Path], None], setting: str | None = None
) -> sqlite3.Connection:
    """A connection to the store file `path` (created with its directory when missing), migrated and ready.

    Args:
        path: the database file.
        what: what the file holds, for messages (`"conversation store"`).
        migrate: creates or upgrades the schema; raises `ConfigError` for a file of a newer version.
        setting: the variable that chose the file, to start messages with (`"BRIDGE_STORE_URL"`).

    Raises:
        ConfigError: the directory or file cannot be created or opened, or is not a usable SQLite database.
    """
    prefix = f"{setting}: " if setting else ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{prefix}cannot create the directory {str(path.parent)!r} for the {what}: {exc.strerror or exc}"
        ) from exc
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"{prefix}cannot open the {what} {str(path)!r}: {exc}") from exc
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a crash of the process; only a power cut may lose the last ones.
        db.execute("PRAGMA synchronous = NORMAL")
        migrate(db, path)
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.Error):
            raise ConfigError(f"{prefix}cannot use {str(path)!r} as the {what}: {exc}") from exc
        raise
    return db
