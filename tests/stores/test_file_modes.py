"""The bridge's database is its owner's alone: it holds end users' questions and answers."""

from __future__ import annotations

import stat
from pathlib import Path

from omni_bridge.stores import SqliteStore
from tests.stores.service_contract import ALICE, started


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_store_is_made_owner_only_with_its_directory_and_journal_files(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bridge.db"
    async with SqliteStore(path) as store:
        await started(store, ALICE)
        journals = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(journal.exists() for journal in journals)  # written through WAL, so they are there to check

        assert _mode(path.parent) == 0o700
        assert _mode(path) == 0o600
        assert [_mode(journal) for journal in journals] == [0o600, 0o600]


async def test_an_existing_file_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o755)
    path = directory / "bridge.db"
    async with SqliteStore(path):
        pass
    path.chmod(0o640)  # say, a group that backs it up
    async with SqliteStore(path) as store:
        await started(store, ALICE)
    assert _mode(path) == 0o640
    assert _mode(directory) == 0o755  # a directory the bridge did not make is not touched
