"""The SQLite file of a store: opened (directory made, WAL, a busy timeout, the schema created and its version
checked, every failure a `ConfigError` naming the file and the setting behind it), a second read-only connection
for lookups, and write transactions that take the file's write lock at once.

The file holds end users' questions and answers, so a file made here is readable by its owner alone: a new
directory is made `0700` and a new database file `0600` (created empty before SQLite opens it, so its `-wal` and
`-shm` files, which SQLite makes with the database file's mode, are `0600` too). An existing file or directory
keeps the mode its operator gave it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from omni_bridge.exceptions import ConfigError

__all__ = ["open_reader", "open_sqlite", "transaction"]


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the file's write lock at once, so two processes cannot interleave."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    db.commit()


def open_sqlite(
    path: Path, *, what: str, schema: Sequence[str], version: int, setting: str | None = None
) -> sqlite3.Connection:
    """A connection to the store file `path` (created with its directory when missing), its schema in place.

    Args:
        path: the database file.
        what: what the file holds, for messages (`"conversation store"`).
        schema: `CREATE … IF NOT EXISTS` statements, run at every open: a file made by an older layout (one
            that held only some of the tables) gets the missing ones.
        version: the schema version they make; a file of a newer version is refused.
        setting: the variable that chose the file, to start messages with (`"BRIDGE_STORE_URL"`).

    Raises:
        ConfigError: the directory or file cannot be created or opened, is not a usable SQLite database, or was
            written by a newer omni-bridge.
    """
    prefix = f"{setting}: " if setting else ""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{prefix}cannot create the directory {str(path.parent)!r} for the {what}: {exc.strerror or exc}"
        ) from exc
    with contextlib.suppress(OSError):  # there already, or not creatable: SQLite's own open says what is wrong
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"{prefix}cannot open the {what} {str(path)!r}: {exc}") from exc
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a crash of the process; only a power cut may lose the last ones.
        db.execute("PRAGMA synchronous = NORMAL")
        _create_schema(db, path, what=what, schema=schema, version=version)
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.Error):
            raise ConfigError(f"{prefix}cannot use {str(path)!r} as the {what}: {exc}") from exc
        raise
    return db


def _create_schema(db: sqlite3.Connection, path: Path, *, what: str, schema: Sequence[str], version: int) -> None:
    with transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        (found,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        if found > version:
            raise ConfigError(
                f"the {what} {str(path)!r} has schema version {found}, newer than this omni-bridge "
                f"understands ({version}); upgrade omni-bridge"
            )
        for statement in schema:
            db.execute(statement)
        if found == 0:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


def open_reader(path: Path, writer: sqlite3.Connection, *, what: str, setting: str) -> sqlite3.Connection:
    """A second connection for lookups on the loop: never waits on a lock (busy: the caller retries elsewhere)."""
    try:
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA busy_timeout = 0")
        reader.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        writer.close()
        raise ConfigError(f"{setting}: cannot open the {what} {str(path)!r}: {exc}") from exc
    return reader
