"""Where the sandbox keeps its AI jobs and conversations: in memory, or in a SQLite file that survives restarts.

Omni keeps a conversation for as long as its user may continue it, so a sandbox that forgot its conversations
on every restart answered the bridge's next question with `404 Conversation … not found`. With a data directory
(`SandboxConfig.data_dir`) every job and conversation is written through to `<data_dir>/sandbox.db` at each change
of state and read back when the sandbox starts; without one the same tables live in an in-memory SQLite
database, so both cases run the same code.

A job stored as QUEUED, EXECUTING or DELIVERING was cut off by the stop: it comes back FAILED with code
`SANDBOX_RESTARTED` (nothing runs it any more, and a poller must not wait for ever). Webhook signing secrets and
attachment bytes are never written: a restarted job has no webhook to send, and only an attachment's name, type
and size are kept. The standard library's `sqlite3` is enough here: one writer (the sandbox's loop), small rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["STORE_FILE", "ConversationRecord", "JobStore"]

STORE_FILE = "sandbox.db"
"""The file in the sandbox's data directory that holds its jobs and conversations."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_conversation ON jobs (conversation_id, created_at);
"""


@dataclass
class ConversationRecord:
    """One AI conversation: whose it is, its name (its first prompt, shortened) and when it last changed."""

    id: str
    user_id: str
    name: str
    created_at: str
    updated_at: str


class JobStore:
    """Jobs (as JSON) and conversations in one SQLite database: `path`, or in memory when `path` is `None`.

    Safe to call from any thread (one lock); each write commits at once, so a crash loses nothing written.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                path.touch(mode=0o600)  # the prompts users asked are theirs alone
        self._conn = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"<JobStore {'memory' if self.path is None else os.fspath(self.path)}>"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- conversations -----------------------------------------------------------------------------------

    def save_conversation(self, record: ConversationRecord) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO conversations (id, user_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
                (record.id, record.user_id, record.name, record.created_at, record.updated_at),
            )

    def conversations(self) -> Iterator[ConversationRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT id, user_id, name, created_at, updated_at FROM conversations").fetchall()
        for row in rows:
            yield ConversationRecord(*row)

    def forget_conversations(self) -> int:
        """Delete every conversation and its jobs (a knob for tests of a client that must recover); how many."""
        with self._lock, self._conn:
            count = self._conn.execute("DELETE FROM conversations").rowcount
            self._conn.execute("DELETE FROM jobs")
        return int(count)

    # --- jobs --------------------------------------------------------------------------------------------

    def save_job(self, job_id: str, conversation_id: str, created_at: str, body: dict[str, Any]) -> None:
        text = json.dumps(body, separators=(",", ":"))
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO jobs (id, conversation_id, created_at, body) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                (job_id, conversation_id, created_at, text),
            )

    def jobs(self) -> Iterator[dict[str, Any]]:
        """Every stored job's body, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT body FROM jobs ORDER BY created_at, id").fetchall()
        for (body,) in rows:
            yield json.loads(body)
