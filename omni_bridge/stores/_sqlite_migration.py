"""Moving the two files of older omni-bridge versions into the one store file, once, when it is first opened.

Before the one-file layout, `BRIDGE_DATA_DIR` held `conversations.db` (the bridge's conversations and
artifacts) and `service.db` (the HTTP service's records). When the new file does not exist yet and either old
file does, their rows are copied into a new file in one transaction; the new file takes its name only once
that transaction has committed, and only then are the old files renamed `*.migrated`. A failure leaves the old
files as they were and no new file behind, so the next start tries again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

from omni_bridge.exceptions import ConfigError
from omni_bridge.stores._sqlite import transaction
from omni_bridge.stores._sqlite_tables import SETTING, open_database

__all__ = ["LEGACY_FILES", "migrate_legacy_files"]

log = logging.getLogger("omni_bridge.stores")

LEGACY_FILES: dict[str, tuple[str, ...]] = {
    "conversations.db": ("conversations", "artifacts"),
    "service.db": ("threads", "messages", "responses", "events"),
}
"""The old files of `BRIDGE_DATA_DIR` and the tables each held (the same tables, by name, as the new file)."""
_MIGRATED = ".migrated"


def migrate_legacy_files(path: Path) -> None:
    """Build `path` from the old files beside it when it does not exist (or is empty); nothing to do otherwise.

    Raises:
        ConfigError: an old file cannot be read or copied (it is left as it was).
    """
    if path.exists() and path.stat().st_size > 0:
        return  # an empty file (what `sqlite3.connect` leaves behind) holds nothing and is replaced
    found = [path.parent / name for name in LEGACY_FILES if (path.parent / name).is_file()]
    if not found:
        return
    building = path.with_name(path.name + ".migrating")
    _remove(building)
    try:
        counts = _copy(found, building)
        building.replace(path)
    except BaseException as exc:
        _remove(building)
        if isinstance(exc, sqlite3.Error):
            raise ConfigError(
                f"{SETTING}: cannot move the records of {', '.join(str(p) for p in found)} into {str(path)!r}: {exc}"
            ) from exc
        raise
    for old in found:
        for suffix in ("", "-wal", "-shm"):
            source = old.with_name(old.name + suffix)
            if source.exists():
                source.replace(source.with_name(source.name + _MIGRATED))
    moved = ", ".join(f"{rows} {table}" for table, rows in counts.items())
    log.info(
        "moved the records of %s into %s (%s); the old files are kept as *%s",
        " and ".join(p.name for p in found),
        path,
        moved,
        _MIGRATED,
    )


def _copy(found: list[Path], target: Path) -> dict[str, int]:
    """Copy every table of the old files into a new file at `target`, in one transaction; rows per table."""
    db = open_database(target)
    counts: dict[str, int] = {}
    try:
        for n, old in enumerate(found):
            db.execute(f"ATTACH DATABASE ? AS old{n}", (str(old),))
        with transaction(db):
            for n, old in enumerate(found):
                for table in LEGACY_FILES[old.name]:
                    columns = ", ".join(row[1] for row in db.execute(f"PRAGMA old{n}.table_info({table})"))
                    if not columns:
                        continue  # the old file never got this table
                    cursor = db.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM old{n}.{table}")
                    counts[table] = cursor.rowcount
        for n in range(len(found)):
            db.execute(f"DETACH DATABASE old{n}")
        # Out of WAL mode, so the new file is whole in itself when it takes its name (the next open sets WAL).
        db.execute("PRAGMA main.journal_mode = DELETE")
    finally:
        db.close()
    return counts


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
