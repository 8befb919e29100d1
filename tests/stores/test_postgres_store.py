"""`PostgresStore` as the service's store: the backend-neutral contract, then what only several workers on one
database show.

Two store objects on one schema stand for two server workers: each has its own pool and LISTEN connection,
exactly as two processes would. Each test works in a fresh schema (`tests/stores/_postgres.py`).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from omni_bridge.exceptions import ConfigError
from omni_bridge.stores import PostgresStore, ServiceStore
from tests.stores._postgres import fresh_schema, postgres_url
from tests.stores.service_contract import *  # noqa: F403  (pytest collects the imported contract tests)
from tests.stores.service_contract import ALICE, answer, new_message, new_thread, started

NO_POLL = 3600.0
"""`max_wait_seconds` for tests of NOTIFY: a wait that no notification ends would outlast every test timeout."""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ServiceStore]:
    """The contract's store: open, empty, closed after the test."""
    async with PostgresStore(pg_url) as opened:
        yield opened


@pytest.fixture
async def workers(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two workers' stores on one database, that only NOTIFY wakes."""
    async with (
        PostgresStore(pg_url, max_wait_seconds=NO_POLL) as first,
        PostgresStore(pg_url, max_wait_seconds=NO_POLL) as second,
    ):
        yield first, second


def _lease(seconds: float = 60.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def _until_listening(store: PostgresStore) -> None:
    """Poll (the caller bounds it) until the store's listener is connected again."""
    while not store.listening:  # noqa: ASYNC110 - the flag belongs to the listener's own task
        await asyncio.sleep(0.01)


# Across workers ------------------------------------------------------------------------------------------------


async def test_a_cancel_on_one_worker_wakes_the_run_on_another(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    _thread, response = await started(worker_a)

    waiting = asyncio.create_task(worker_a.wait_for_change(response.id, NO_POLL))
    await asyncio.sleep(0)  # the waiter is registered before the cancel
    asked = await worker_b.request_cancel(ALICE, response.id, by="alice")
    assert asked is not None and asked.cancel_requested and asked.status == "running"

    async with asyncio.timeout(10):
        await waiting
    beat = await worker_a.heartbeat(response.id, "w1", _lease())
    assert beat is not None and beat.cancel_requested and beat.canceled_by == "alice"


async def test_events_written_on_one_worker_wake_a_follower_on_another(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    thread, response = await started(worker_a)
    event: dict[str, object] = {"type": "text_delta", "conversation_id": thread.id, "text": "West"}

    following = asyncio.create_task(worker_b.wait_for_change(response.id, NO_POLL))
    await asyncio.sleep(0)
    assert await worker_a.append(response.id, "w1", [event])
    async with asyncio.timeout(10):
        await following
    replay = await worker_b.events_after(ALICE, response.id, 0)
    assert replay is not None and [e.event for e in replay] == [event]

    ending = asyncio.create_task(worker_b.wait_for_change(response.id, NO_POLL))
    await asyncio.sleep(0)
    assert await worker_a.finish(response.id, "w1", "succeeded", message=answer(response))
    async with asyncio.timeout(10):
        await ending
    ended = await worker_b.get_response(ALICE, response.id)
    assert ended is not None and ended.status == "succeeded"


async def test_concurrent_posts_to_one_thread_let_exactly_one_in(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    thread, response = await started(worker_a)
    assert await worker_a.finish(response.id, "w1", "succeeded", message=answer(response))

    posts = [new_message(thread, f"follow-up {n}") for n in range(12)]
    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *((worker_a if n % 2 else worker_b).post_message(*post) for n, post in enumerate(posts))
        )

    winners = [post for post, result in zip(posts, results, strict=True) if result is not None]
    assert len(winners) == 1
    message, active = winners[0]
    messages = await worker_b.list_messages(ALICE, thread.id)
    assert messages is not None and [m.id for m in messages][2:] == [message.id]
    current = await worker_b.get_thread(ALICE, thread.id)
    assert current is not None and current.current_response_id == active.id
    for _message, loser in posts:
        if loser.id != active.id:
            assert await worker_a.get_response(ALICE, loser.id) is None


async def test_two_first_claims_on_two_workers_leave_one_owner(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    thread, message, response = new_thread(ALICE)
    await worker_a.create_thread(thread, message, response)

    async with asyncio.timeout(10):
        claims = await asyncio.gather(
            worker_a.claim(response.id, "worker-a", _lease()), worker_b.claim(response.id, "worker-b", _lease())
        )
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1
    polled = await worker_a.get_response(ALICE, response.id)
    assert polled is not None and polled.worker == winners[0].worker


async def test_expiring_leases_on_every_worker_at_once_fails_each_response_once(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    running = []
    for n in range(8):
        thread, message, response = new_thread(ALICE, f"question {n}")
        await worker_a.create_thread(thread, message, response)
        assert await worker_a.claim(response.id, "dead-worker", _lease(1)) is not None
        running.append((thread, response))

    later = _lease(60)
    async with asyncio.timeout(30):
        rounds = await asyncio.gather(*(store.expire_leases(later) for store in (worker_a, worker_b) * 3))

    expired = [response.id for found in rounds for response in found]
    assert sorted(expired) == sorted(response.id for _thread, response in running)
    for thread, response in running:
        messages = await worker_b.list_messages(ALICE, thread.id)
        assert messages is not None and [m.role for m in messages] == ["user", "assistant"]
        lost = await worker_b.get_response(ALICE, response.id)
        assert lost is not None and lost.status == "failed" and lost.error is not None
        assert lost.error.type == "worker_lost"


async def test_a_heartbeat_that_races_the_reaper_either_keeps_the_lease_or_loses_it_cleanly(
    workers: tuple[PostgresStore, PostgresStore],
) -> None:
    worker_a, worker_b = workers
    thread, response = await started(worker_a)
    moment = _lease(120)

    async with asyncio.timeout(10):
        beat, expired = await asyncio.gather(
            worker_a.heartbeat(response.id, "w1", _lease(3600)), worker_b.expire_leases(moment)
        )

    final = await worker_a.get_response(ALICE, response.id)
    assert final is not None
    if beat is None:  # the reaper went first: failed, and the worker may no longer write
        assert [r.id for r in expired] == [response.id] and final.status == "failed"
        assert not await worker_a.append(response.id, "w1", [{"type": "progress"}])
    else:  # the heartbeat went first: the lease now outlasts `moment`
        assert expired == [] and final.status == "running"
        assert await worker_a.append(response.id, "w1", [{"type": "progress", "conversation_id": thread.id}])


# The listener ----------------------------------------------------------------------------------------------------


async def test_the_listener_comes_back_after_its_connection_is_killed(pg_url: str) -> None:
    name = f"ob_listener_{uuid.uuid4().hex[:12]}"  # only this test's listeners are killed
    url = f"{pg_url}&application_name={name}"
    async with PostgresStore(url, max_wait_seconds=NO_POLL) as worker_a, PostgresStore(url) as worker_b:
        thread, response = await started(worker_a)
        assert worker_a.listening

        waiting = asyncio.create_task(worker_a.wait_for_change(response.id, NO_POLL))
        await asyncio.sleep(0)
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND query LIKE 'LISTEN%%'",
                (name,),
            ).fetchall()
        assert len(killed) == 2  # one listener per store
        async with asyncio.timeout(10):
            await waiting  # a lost listener wakes its waiters: they must re-read
            await _until_listening(worker_a)

        following = asyncio.create_task(worker_a.wait_for_change(response.id, NO_POLL))
        await asyncio.sleep(0)
        assert await worker_b.request_cancel(ALICE, response.id, by="alice") is not None
        async with asyncio.timeout(10):
            await following
        beat = await worker_a.heartbeat(response.id, "w1", _lease())
        assert beat is not None and beat.cancel_requested
        assert thread.id == beat.thread_id


# Opening ---------------------------------------------------------------------------------------------------------


async def test_workers_starting_together_create_the_tables_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(store.open() for store in stores))
        thread, message, response = new_thread(ALICE)
        await stores[0].create_thread(thread, message, response)
        assert await stores[3].get_thread(ALICE, thread.id) is not None
    finally:
        for store in stores:
            await store.aclose()
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT component, version FROM omni_bridge_schema").fetchall()
        assert sorted(versions) == [("conversations", 1), ("service", 1)]  # one database, both components
        tables = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'bridge_responses' AND column_name = 'record'"
        ).fetchall()
        assert tables == [("jsonb",)]


async def test_a_database_from_a_newer_version_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE omni_bridge_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        conn.execute("INSERT INTO omni_bridge_schema VALUES ('service', 99)")
    store = PostgresStore(pg_url)
    with pytest.raises(ConfigError, match="schema version 99"):
        await store.open()
    await store.aclose()


async def test_an_unreachable_database_is_a_config_error_that_keeps_the_password_secret() -> None:
    store = PostgresStore("postgresql://bridge:s3cret@127.0.0.1:1/bridge", open_timeout=1.0)
    assert "s3cret" not in repr(store) and "127.0.0.1:1/bridge" in repr(store)
    with pytest.raises(ConfigError) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1/bridge" in str(caught.value)
    assert "refused" in str(caught.value)  # libpq's reason, not just a time-out
    await store.aclose()


async def test_a_schema_named_in_the_url_that_does_not_exist_is_a_config_error(pg_url: str) -> None:
    missing = pg_url.replace("search_path%3D", "search_path%3Dob_missing_")
    store = PostgresStore(missing)
    with pytest.raises(ConfigError, match="cannot set up the service tables"):
        await store.open()
    await store.aclose()


@pytest.mark.parametrize("url", ["mysql://bridge:s3cret@db/bridge", "postgresql://bridge:s3cret@db/bridge?port=x=y"])
def test_a_url_that_is_not_postgresql_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PostgresStore(url)
    assert "s3cret" not in str(caught.value)


_WITHOUT_DRIVER = """
import sys
sys.modules["psycopg"] = None  # as if the `postgres` extra were not installed: `import psycopg` fails
import omni_bridge
from omni_bridge import stores
from omni_bridge.exceptions import ConfigError
for make in (stores.open_store, lambda url: stores.PostgresStore(url)):
    try:
        make("postgresql://bridge:s3cret@db/bridge")
    except ConfigError as exc:
        print(exc)
"""


async def test_without_the_driver_a_postgresql_url_is_a_config_error_naming_the_extra() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WITHOUT_DRIVER, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 2 and all("omni-bridge[postgres]" in line for line in lines)
    assert "s3cret" not in out.decode()


async def test_a_closed_store_refuses_to_work_and_closes_twice_quietly(store: PostgresStore) -> None:
    await store.aclose()
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get_thread(ALICE, "thr_missing")
    assert "closed" in repr(store)
