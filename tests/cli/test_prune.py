"""`omni-bridge prune`: deletes what is older than N days and prints how many of each kind, keeps running threads,
deletes nothing with `--dry-run`, and refuses a store that is not there.

The records are made through the store, then aged in the file itself (their stamps moved 200 days back), as
time would; the command runs in-process.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.cli import main
from omni_bridge.stores import SqliteStore
from omni_bridge.tools import Artifact
from tests.stores.service_contract import ALICE, answer, new_thread

IDENTITY = OmniIdentity(external_id="alice", user_id="u-alice", server="https://acme.omniapp.co")
AGE = timedelta(days=200)
AGE_US = 200 * 86_400 * 1_000_000


@dataclass
class Seeded:
    old_thread: str
    running_thread: str
    lone: str
    artifact: str


@pytest.fixture(autouse=True)
def no_configured_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BRIDGE_STORE_URL", "BRIDGE_RETENTION_DAYS", "BRIDGE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def seed(path: Path) -> Seeded:
    """An answered thread, a thread whose response runs, a conversation of no thread and an artifact, all
    200 days old; and one thread of today."""

    async def write() -> Seeded:
        async with SqliteStore(path) as store:
            thread, message, response = new_thread(ALICE)
            await store.create_thread(thread, message, response)
            assert await store.claim(response.id, "w1", datetime.now(UTC) + timedelta(days=1))
            transcript = Conversation(id=thread.id, identity=IDENTITY, engine="omni")
            assert await store.finish(response.id, "w1", "succeeded", message=answer(response), conversation=transcript)
            running, message, response = new_thread(ALICE)
            await store.create_thread(running, message, response)
            assert await store.claim(response.id, "w1", datetime.now(UTC) + timedelta(days=1))
            lone = Conversation(identity=IDENTITY, engine="claude")
            await store.create(lone)
            made = Artifact(owner="u-alice", tool="getData", text="West: 42", created_at=datetime.now(UTC) - AGE)
            await store.artifacts.put(made)
            return Seeded(thread.id, running.id, lone.id, made.id)

    seeded = asyncio.run(write())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE threads SET updated_us = updated_us - ?", (AGE_US,))
        db.execute("UPDATE conversations SET updated_us = updated_us - ?", (AGE_US,))
    asyncio.run(_add_recent(path))
    return seeded


async def _add_recent(path: Path) -> None:
    async with SqliteStore(path) as store:
        await store.create_thread(*new_thread(ALICE, "today's question"))


def remaining(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("threads", "messages", "responses", "events", "conversations", "artifacts")
        }


def counts_in(out: str) -> dict[str, int]:
    return {kind: int(n.replace(",", "")) for kind, n in re.findall(r"^  (\w+)\s+([\d,]+)$", out, re.MULTILINE)}


DELETED = {"threads": 1, "messages": 2, "responses": 1, "events": 0, "conversations": 2, "artifacts": 1}


def test_dry_run_prints_what_would_go_and_deletes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bridge.db"
    seed(path)
    before = remaining(path)

    assert main(["prune", "--store", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Would delete from SQLite {path} what was last changed before ")
    assert "(90 days)" in out and "Dry run: nothing was deleted." in out
    assert counts_in(out) == DELETED
    assert remaining(path) == before


def test_prune_deletes_old_records_keeps_running_and_recent_ones_and_says_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bridge.db"
    seeded = seed(path)
    before = remaining(path)

    assert main(["prune", "--store", f"sqlite:///{path}", "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Deleted from SQLite") and "(30 days)" in out
    assert counts_in(out) == DELETED
    assert remaining(path) == {kind: before[kind] - DELETED[kind] for kind in before}
    with sqlite3.connect(path) as db:
        threads = {row[0] for row in db.execute("SELECT id FROM threads")}
    assert seeded.running_thread in threads and seeded.old_thread not in threads and len(threads) == 2

    assert main(["prune", "--store", str(path), "--days", "30"]) == 0
    assert set(counts_in(capsys.readouterr().out).values()) == {0}


def test_the_configured_store_and_retention_are_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "configured.db"
    seed(path)
    monkeypatch.setenv("BRIDGE_STORE_URL", str(path))
    monkeypatch.setenv("BRIDGE_RETENTION_DAYS", "365")  # the records are 200 days old: kept

    assert main(["prune"]) == 0
    out = capsys.readouterr().out
    assert f"SQLite {path}" in out and "(365 days)" in out and set(counts_in(out).values()) == {0}

    monkeypatch.setenv("BRIDGE_RETENTION_DAYS", "0")
    before = remaining(path)
    assert main(["prune"]) == 0
    assert "retention is off" in capsys.readouterr().out
    assert remaining(path) == before


def test_a_store_that_is_not_there_is_refused_and_not_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "bridge.db"
    assert main(["prune", "--store", str(missing)]) == 2
    assert "there is no store at" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.parametrize("days", ["0", "-3", "soon", "nan"])
def test_days_must_be_a_number_above_zero(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["prune", "--days", days])
    assert exited.value.code == 2
    assert "--days" in capsys.readouterr().err
