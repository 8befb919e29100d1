"""The row-level work on conversations and artifacts in the SQLite store file, inside the caller's transaction.

A conversation is one JSON record written by one statement, stamped strictly after every stored conversation
(so `list` order is the order of the saves), and never rebound to another Omni user.
"""

from __future__ import annotations

import json
import sqlite3

from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.stores._rules import duplicate_conversation, from_us, next_stamp_us, rebound_conversation
from omni_bridge.tools import Artifact

__all__ = ["create_conversation", "get_artifact", "list_conversations", "put_artifact", "save_conversation"]

_SELECT = "SELECT record FROM conversations"


def create_conversation(db: sqlite3.Connection, conversation: Conversation) -> int:
    """Write a new conversation; its stamp. Raises `ValueError` when the id is taken."""
    if db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation.id,)).fetchone():
        raise duplicate_conversation(conversation.id)
    return _upsert(db, conversation)


def save_conversation(db: sqlite3.Connection, conversation: Conversation) -> int:
    """Write the whole conversation (created if new); its stamp. Raises `IdentityError` on a rebind."""
    row = db.execute(
        "SELECT external_id, user_id, server FROM conversations WHERE id = ?", (conversation.id,)
    ).fetchone()
    if row is not None:
        bound = OmniIdentity(external_id=row[0], user_id=row[1], server=row[2])
        if not conversation.is_bound_to(bound):
            raise rebound_conversation(conversation.id)
    return _upsert(db, conversation)


def get_conversation(db: sqlite3.Connection, conversation_id: str) -> Conversation | None:
    row = db.execute(_SELECT + " WHERE id = ?", (conversation_id,)).fetchone()
    return None if row is None else Conversation.model_validate_json(row[0])


def list_conversations(db: sqlite3.Connection, external_id: str | None, limit: int) -> list[Conversation]:
    where, params = (" WHERE external_id = ?", (external_id,)) if external_id is not None else ("", ())
    query = _SELECT + where + " ORDER BY updated_us DESC, id DESC LIMIT ?"
    return [Conversation.model_validate_json(row[0]) for row in db.execute(query, (*params, limit)).fetchall()]


def put_artifact(db: sqlite3.Connection, artifact: Artifact) -> None:
    db.execute(
        "INSERT INTO artifacts (id, owner, record) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, record = excluded.record",
        (artifact.id, artifact.owner, artifact.model_dump_json()),
    )


def get_artifact(db: sqlite3.Connection, artifact_id: str, owner: str) -> Artifact | None:
    row = db.execute("SELECT record FROM artifacts WHERE id = ? AND owner = ?", (artifact_id, owner)).fetchone()
    return None if row is None else Artifact.model_validate_json(row[0])


def _upsert(db: sqlite3.Connection, conversation: Conversation) -> int:
    (last_us,) = db.execute("SELECT MAX(updated_us) FROM conversations").fetchone()
    stamp_us = next_stamp_us(last_us)
    record = {**conversation.model_dump(mode="json"), "updated_at": from_us(stamp_us).isoformat()}
    identity = conversation.identity
    db.execute(
        "INSERT INTO conversations (id, external_id, user_id, server, updated_us, record) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET updated_us = excluded.updated_us, record = excluded.record",
        (conversation.id, identity.external_id, identity.user_id, identity.server, stamp_us, json.dumps(record)),
    )
    return stamp_us
