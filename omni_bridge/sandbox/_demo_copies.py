"""`demo_database`: a private in-memory copy of the demo database, without generating its rows every time.

Why: generating the rows (`build_database`) takes most of a second, and the embedded sandbox starts before
the console's first prompt, and once per test that makes a `Sandbox`. The rows depend only on the seed and on
the generator's code, so one build is kept and copied (SQLite's online backup, a few milliseconds):

- in this process, one template per seed; every `Sandbox` gets its own copy, so one that changes its data
  changes no other;
- across processes, when a cache folder is given (the embedded sandbox's data folder), a SQLite file named
  after the seed and a fingerprint of the generator's source, written once (atomically, mode 600) and read by
  later starts. A file from another version of the generator has another name and is removed; a file that
  cannot be read is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

from omni_bridge.sandbox import _dataset
from omni_bridge.sandbox._dataset import TABLES, build_database

__all__ = ["demo_database"]

_PREFIX = "demo-data-"
_templates: dict[int, sqlite3.Connection] = {}
_lock = threading.Lock()


def demo_database(seed: int, cache_dir: Path | None = None) -> sqlite3.Connection:
    """A new in-memory connection holding the demo rows of `seed` (`check_same_thread=False`, like
    `build_database`'s)."""
    with _lock:
        template = _templates.get(seed)
        if template is None:
            template = _templates[seed] = _load_or_build(seed, cache_dir)
        copy = sqlite3.connect(":memory:", check_same_thread=False)
        template.backup(copy)
    return copy


def _load_or_build(seed: int, cache_dir: Path | None) -> sqlite3.Connection:
    if cache_dir is None:
        return build_database(seed=seed)
    path = cache_dir / f"{_PREFIX}{seed}-{_fingerprint()}.sqlite"
    loaded = _load(path)
    if loaded is not None:
        return loaded
    built = build_database(seed=seed)
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs the next start the build
        _write(built, path)
        _remove_stale(cache_dir, keep=path, seed=seed)
    return built


def _fingerprint() -> str:
    """Changes whenever the generator's code does, so a cached file never outlives the rows it stood for."""
    return hashlib.sha256(Path(_dataset.__file__).read_bytes()).hexdigest()[:16]


def _load(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    memory = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as on_disk:
            on_disk.backup(memory)
        present = {row[0] for row in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        memory.close()
        return None
    if not set(TABLES) <= present:  # a truncated or foreign file: build again
        memory.close()
        return None
    return memory


def _write(conn: sqlite3.Connection, path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".demo-", suffix=".sqlite")  # mode 600
    os.close(handle)
    try:
        with contextlib.closing(sqlite3.connect(temporary)) as on_disk:
            conn.backup(on_disk)
        os.replace(temporary, path)  # readers see the whole file or none
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _remove_stale(cache_dir: Path, *, keep: Path, seed: int) -> None:
    for old in cache_dir.glob(f"{_PREFIX}{seed}-*.sqlite"):
        if old != keep:
            old.unlink(missing_ok=True)
