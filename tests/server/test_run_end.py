"""No run outlives its lease, no lease outlives its run, however a cancel is delivered (issue 12, point 1).

On Python 3.11 `asyncio.wait_for` (which psycopg_pool waits for a connection with) returns normally when a cancel
lands as its inner wait completes: the cancel is lost. The runner used to stop its lease watcher only by a
cancel and an unbounded await, so a lost cancel left the watcher renewing the lease for ever and the run waiting
on it for ever (the response `running` for good). These tests lose a cancel on purpose:

- `LosesACancel` wraps a real store: a chosen call waits until it is cancelled, then completes and returns
  normally, as 3.11's `wait_for` does (exactly one cancel lost per call chosen);
- on PostgreSQL, a pool of ONE connection held by the test while the run ends, and handed back in the very
  step the run ends, which loses the cancel inside psycopg_pool itself, nothing patched;
- an invariant over many runs (some canceled, some losing a cancel) on both backends: a response with its
  final message is never `running`, a `running` one always has a live lease, every run ends.

Every wait is bounded: a run that hangs fails its test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from omni_bridge.agent import Bridge
from omni_bridge.agent.events import TextPart
from omni_bridge.server import ResponseRunner
from omni_bridge.stores import (
    STORE_FILE,
    TERMINAL_STATUSES,
    MessageRecord,
    Owner,
    PostgresStore,
    ResponseRecord,
    SqliteStore,
    Store,
    ThreadRecord,
)
from omni_bridge.testing import FakeAnthropic, text_reply, tool_then_answer
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until
from tests.server.service_helpers import (
    REVENUE,
    data_of,
    faults,
    running_service,
    service_settings,
    wait_for_response,
)
from tests.stores._postgres import fresh_schema

OWNER = Owner(tenant="acme", user="alice")
ANSWER = "Revenue is up in every region."
USERS = ("alice", "bob", "carol", "dan", "erin", "nora")
"""The sandbox's embed users: 24 threads, four each."""
BOUND = 30.0
"""The longest any one wait here lasts: long enough for a loaded machine, short enough to fail, not hang."""


def _task_name() -> str:
    task = asyncio.current_task()
    return "" if task is None else task.get_name()


class LosesACancel:
    """Over a real store (mixed in before it): chosen calls lose one cancel each, as 3.11's `wait_for` does.

    A chosen call waits until it is cancelled; then it makes the real call and returns its result normally
    instead of raising. Chosen: the lease watcher's first `watcher_call` (`get_response` or `heartbeat`) of a
    response `lose_watcher(response_id)` picks, and the run's conversation `get` of a thread
    `lose_in_get(thread_id)` picks (the engine is then stopped while it loads the conversation). The watcher's
    and the run's tasks are told apart by their names (`watcher <id>`, `response <id>`).

    Also records what shows a lease outliving its run: every `heartbeat` that starts after the response was
    finished, with what it returned (`late_beats`).
    """

    watcher_call = "get_response"
    lose_watcher: Callable[[str], bool] = staticmethod(lambda _response_id: True)
    lose_in_get: Callable[[str], bool] = staticmethod(lambda _thread_id: False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost: list[tuple[str, str]] = []
        """(call, response or thread id) of each cancel lost."""
        self.waiting: dict[tuple[str, str], asyncio.Event] = {}
        """Set when a chosen call has started to wait for its cancel."""
        self._chosen_calls: set[tuple[str, str]] = set()
        self.finished: set[str] = set()
        self.finishing: set[str] = set()
        """The responses whose `finish` has been called (it may wait for a connection)."""
        self.late_beats: list[tuple[str, ResponseRecord | None]] = []

    def waiting_in(self, call: str, key: str) -> asyncio.Event:
        return self.waiting.setdefault((call, key), asyncio.Event())

    async def _lose_one_cancel(self, call: str, key: str, work: Coroutine[Any, Any, Any]) -> Any:
        go = asyncio.Event()

        async def after_the_cancel() -> Any:
            await go.wait()
            return await work

        inner = asyncio.ensure_future(after_the_cancel())
        self.waiting_in(call, key).set()
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            # The wait was cancelled; like `wait_for` whose inner wait just completed, return its result.
            self.lost.append((call, key))
            go.set()
            return await inner

    def _chosen(self, call: str, key: str, wanted: bool) -> bool:
        """Whether this call is the one (the first of its kind) to lose a cancel; `wanted` says it may be."""
        if not wanted or (call, key) in self._chosen_calls:
            return False
        self._chosen_calls.add((call, key))
        return True

    async def get_response(self, owner: Owner, response_id: str) -> ResponseRecord | None:
        work = super().get_response(owner, response_id)  # type: ignore[misc]
        watcher = _task_name() == f"watcher {response_id}"
        wanted = watcher and self.watcher_call == "get_response" and self.lose_watcher(response_id)
        if self._chosen("get_response", response_id, wanted):
            lost: ResponseRecord | None = await self._lose_one_cancel("get_response", response_id, work)
            return lost
        record: ResponseRecord | None = await work
        return record

    async def heartbeat(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        late = response_id in self.finished
        work = super().heartbeat(response_id, worker, lease_until)  # type: ignore[misc]
        watcher = _task_name() == f"watcher {response_id}"
        wanted = watcher and self.watcher_call == "heartbeat" and self.lose_watcher(response_id)
        if self._chosen("heartbeat", response_id, wanted):
            result = await self._lose_one_cancel("heartbeat", response_id, work)
        else:
            result = await work
        if late:
            self.late_beats.append((response_id, result))
        return result  # type: ignore[no-any-return]

    async def get(self, conversation_id: str) -> Any:
        work = super().get(conversation_id)  # type: ignore[misc]
        run = _task_name().startswith("response ")
        if self._chosen("get", conversation_id, run and self.lose_in_get(conversation_id)):
            return await self._lose_one_cancel("get", conversation_id, work)
        return await work

    async def finish(self, response_id: str, worker: str, status: Any, **kwargs: Any) -> bool:
        self.finishing.add(response_id)
        finished: bool = await super().finish(response_id, worker, status, **kwargs)  # type: ignore[misc]
        if finished:
            self.finished.add(response_id)
        return finished


class LossySqlite(LosesACancel, SqliteStore):
    pass


class LossyPostgres(LosesACancel, PostgresStore):
    pass


class GatedPostgres(LosesACancel, PostgresStore):
    """A PostgreSQL store whose run waits, once it has made its conversation, until `engine_may_go` is set.

    The run holds no connection while it waits (the new thread's conversation is written first): the test
    decides when the answer may come, and so when the run ends. Nothing loses a cancel here but the real pool.
    """

    lose_watcher = staticmethod(lambda _response_id: False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_waits = asyncio.Event()
        self.engine_may_go = asyncio.Event()

    async def create(self, conversation: Any) -> None:
        await super().create(conversation)
        if _task_name().startswith("response "):
            self.run_waits.set()
            await self.engine_may_go.wait()


def _assert_no_lease_renewed_after_finish(store: LosesACancel) -> None:
    assert all(result is None for _id, result in store.late_beats), store.late_beats


# --- (a) a lost cancel in the watcher's call, or in the run's own -----------------------------------------


@pytest.mark.parametrize("call", ["get_response", "heartbeat"])
async def test_a_run_ends_when_its_watcher_loses_the_cancel_that_stops_it(
    served: Served, tmp_path: Path, call: str
) -> None:
    store = LossySqlite(tmp_path / STORE_FILE)
    store.watcher_call = call
    # The run loads its conversation only once its watcher waits in the call that will lose the cancel.
    loaded = store.get

    async def get_after_the_watcher(conversation_id: str) -> Any:
        if _task_name().startswith("response "):
            await wait_until(lambda: any(key[0] == call for key in store.waiting), seconds=BOUND)
        return await loaded(conversation_id)

    store.get = get_after_the_watcher  # type: ignore[method-assign]
    async with store, running_service(served, tmp_path, text_reply(ANSWER), store=store, bridge_lease_seconds=6) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            async with asyncio.timeout(BOUND):  # before the fix: the run waited for its watcher for ever
                await svc.service.runner.wait(ids["response_id"])
            response = await store.get_response(OWNER, ids["response_id"])
            messages = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/messages"))

    assert store.lost == [(call, ids["response_id"])]
    assert response is not None and response.status == "succeeded" and response.lease_expires_at is None
    assert messages[-1]["outcome"] == "completed" and messages[-1]["parts"] == [{"type": "text", "text": ANSWER}]
    assert not svc.service.runner.running
    _assert_no_lease_renewed_after_finish(store)


async def test_a_cancel_the_engine_never_received_still_ends_the_run_canceled(served: Served, tmp_path: Path) -> None:
    """A stop lost inside a store call of the engine (it then answers in full) still decides the outcome."""
    store = LossySqlite(tmp_path / STORE_FILE)
    store.lose_watcher = staticmethod(lambda _response_id: False)
    store.lose_in_get = staticmethod(lambda _thread_id: True)
    async with store, running_service(served, tmp_path, text_reply(ANSWER), store=store) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            async with asyncio.timeout(BOUND):
                await store.waiting_in("get", ids["thread_id"]).wait()
            assert (await alice.post(f"/v1/responses/{ids['response_id']}/cancel")).status_code == 200
            response = await wait_for_response(alice, ids["response_id"], seconds=BOUND)
            message = data_of(await alice.get(f"/v1/messages/{response['message_id']}"))

    assert store.lost == [("get", ids["thread_id"])]
    # Before the fix: `succeeded`, though the cancel was asked while the engine ran.
    assert response["status"] == "canceled" and response["cancel_requested"]
    assert message["outcome"] == "canceled"


# --- a late heartbeat -----------------------------------------------------------------------------------


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    if store_url is None:
        async with SqliteStore(tmp_path / STORE_FILE) as sqlite:
            yield sqlite
    else:
        async with PostgresStore(store_url) as postgres:
            yield postgres


async def test_a_heartbeat_after_finish_renews_nothing(store: Store) -> None:
    thread = ThreadRecord(owner=OWNER, engine="claude")
    question = MessageRecord(thread_id=thread.id, owner=OWNER, role="user", parts=[TextPart(text="hi")])
    response = ResponseRecord(thread_id=thread.id, owner=OWNER, user_message_id=question.id, prompt="hi")
    await store.create_thread(thread, question, response)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert await store.claim(response.id, "worker-a", soon) is not None
    answer = MessageRecord(
        thread_id=thread.id, owner=OWNER, role="assistant", parts=[TextPart(text=ANSWER)], outcome="completed"
    )
    assert await store.finish(response.id, "worker-a", "succeeded", message=answer)
    ended = await store.get_response(OWNER, response.id)

    assert await store.heartbeat(response.id, "worker-a", soon + timedelta(hours=1)) is None
    assert await store.heartbeat(response.id, "another-worker", soon) is None
    after = await store.get_response(OWNER, response.id)
    assert ended is not None and after == ended
    assert after.status == "succeeded" and after.lease_expires_at is None and after.worker == "worker-a"


# --- (b) PostgreSQL: one pooled connection, held while the run ends ---------------------------------------


@contextlib.asynccontextmanager
async def runner_on_one_connection(
    served: Served, tmp_path: Path
) -> AsyncIterator[tuple[GatedPostgres, ResponseRunner, ResponseRecord]]:
    """The project's own `ResponseRunner` and `Bridge` on a PostgreSQL store with a pool of one, one run started.

    No service around them: no reaper and no HTTP reads share the one connection, so the test knows who waits.
    """
    with fresh_schema() as url:
        store = GatedPostgres(url, max_connections=1)
        async with store, FakeAnthropic(text_reply(ANSWER)).serve() as fake_url:
            async with Bridge(service_settings(served, tmp_path, fake_url), store=store) as bridge:
                runner = ResponseRunner(store, bridge, worker_id="worker-a", lease_seconds=30)
                thread = ThreadRecord(owner=OWNER, engine="claude")
                question = MessageRecord(thread_id=thread.id, owner=OWNER, role="user", parts=[TextPart(text="hi")])
                response = ResponseRecord(thread_id=thread.id, owner=OWNER, user_message_id=question.id, prompt="hi")
                await store.create_thread(thread, question, response)
                runner.start(response)
                try:
                    yield store, runner, response
                finally:
                    await runner.aclose()


async def _hold_the_connection_once_the_watcher_needs_it(store: GatedPostgres) -> Any:
    """Take the pool's one connection while the run waits, and return once the watcher waits for it."""
    pool = store._db._pool  # the store's own pool: the test holds its only connection
    assert pool is not None
    async with asyncio.timeout(BOUND):
        await store.run_waits.wait()
        conn = await pool.getconn()
    # The watcher's next look (within about a second) waits for it.
    await wait_until(lambda: pool.get_stats()["requests_waiting"] >= 1, seconds=BOUND)
    return conn


async def test_one_pooled_connection_handed_to_the_watcher_as_the_run_ends(served: Served, tmp_path: Path) -> None:
    """The lost cancel of psycopg_pool itself: the connection reaches the watcher in the step its cancel does."""
    async with runner_on_one_connection(served, tmp_path) as (store, runner, response):
        conn = await _hold_the_connection_once_the_watcher_needs_it(store)
        pool = store._db._pool
        assert pool is not None
        # One step, nothing suspends in between: the connection goes to the waiting watcher, then the run ends
        # (its stop cancels the watcher before the watcher's wait has seen the connection).
        await pool.putconn(conn)
        await runner.cancel(response.id)
        async with asyncio.timeout(BOUND):  # before the fix: the watcher renewed for ever, the run waited on it
            await runner.wait(response.id)
        ended = await store.get_response(OWNER, response.id)

    assert ended is not None and ended.status == "canceled" and ended.lease_expires_at is None
    _assert_no_lease_renewed_after_finish(store)


async def test_one_pooled_connection_held_while_the_run_ends(served: Served, tmp_path: Path) -> None:
    """Held while the run ends: `finish` waits on no helper (the writer's last batch, the watcher wait for the
    same connection), and writes every event once, in order, whoever gets the connection first."""
    async with runner_on_one_connection(served, tmp_path) as (store, runner, response):
        conn = await _hold_the_connection_once_the_watcher_needs_it(store)
        store.engine_may_go.set()
        await wait_until(lambda: response.id in store.finishing, seconds=BOUND)
        pool = store._db._pool
        assert pool is not None
        await pool.putconn(conn)
        async with asyncio.timeout(BOUND):
            await runner.wait(response.id)
        ended = await store.get_response(OWNER, response.id)
        events = await store.events_after(OWNER, response.id, 0)
        messages = await store.list_messages(OWNER, response.thread_id)

    assert ended is not None and ended.status == "succeeded" and ended.lease_expires_at is None
    assert events is not None and messages is not None
    kinds = [event.event["type"] for event in events]
    assert kinds.count("final_message") == 1 and kinds[-1] == "final_message", kinds
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert messages[-1].outcome == "completed" and messages[-1].parts == [TextPart(text=ANSWER)]
    _assert_no_lease_renewed_after_finish(store)


# --- (c) the invariant, on both backends ------------------------------------------------------------------


def _picked(identifier: str, every: int) -> bool:
    """A choice fixed by the id itself (ids are random): about one in `every`."""
    return sum(identifier.encode()) % every == 0


@pytest.fixture
def slow_get_data(served: Served) -> Iterator[None]:
    faults(served, slow_tool_seconds=0.2, slow_tool_name="getData")
    yield
    faults(served)


@pytest.mark.usefixtures("slow_get_data")
async def test_many_runs_with_cancels_and_lost_cancels_all_end_and_no_lease_outlives_its_run(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    # On PostgreSQL, 24 runs at a time share 3 connections.
    lossy: LosesACancel = (
        LossySqlite(tmp_path / STORE_FILE) if store_url is None else LossyPostgres(store_url, max_connections=3)
    )
    # About half the watchers lose the cancel that stops them; a third of the threads lose the cancel of their
    # first run in its conversation read (that read waits for a cancel: those threads are always canceled).
    lossy.lose_watcher = staticmethod(lambda response_id: _picked(response_id, 2))
    lossy.lose_in_get = staticmethod(lambda thread_id: _picked(thread_id, 3))
    store: Store = lossy  # type: ignore[assignment]
    rng = random.Random(12)
    seen: list[tuple[Owner, str]] = []
    broken: list[str] = []

    async def look() -> None:
        """The invariant, sampled while the runs go on."""
        while True:
            moment = datetime.now(UTC)
            for owner, response_id in list(seen):
                r = await store.get_response(owner, response_id)
                assert r is not None
                if r.status == "running" and (r.lease_expires_at is None or r.lease_expires_at <= moment):
                    broken.append(f"{response_id} running without a live lease ({r.lease_expires_at})")
                if r.message_id is not None and r.status not in TERMINAL_STATUSES:
                    broken.append(f"{response_id} has its final message yet is {r.status}")
            await asyncio.sleep(0.05)

    async def ask(client: Any, path: str, cancel: bool) -> dict[str, Any]:
        ids = data_of(await client.post(path, json={"message": {"text": "revenue by region"}}))
        seen.append((Owner(tenant="acme", user=client.headers["X-Bridge-User"]), ids["response_id"]))
        if cancel:
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            assert (await client.post(f"/v1/responses/{ids['response_id']}/cancel")).status_code == 200
        return await wait_for_response(client, ids["response_id"], seconds=BOUND)

    async def converse(n: int) -> list[str]:
        # A thread picked to lose the cancel in its read waits there until canceled: cancel its first run.
        user = USERS[n % len(USERS)]
        async with svc.client(user) as client:
            ids = data_of(await client.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            seen.append((Owner(tenant="acme", user=user), ids["response_id"]))
            if _picked(ids["thread_id"], 3) or rng.random() < 0.3:
                await asyncio.sleep(rng.uniform(0.0, 0.4))
                assert (await client.post(f"/v1/responses/{ids['response_id']}/cancel")).status_code == 200
            first = await wait_for_response(client, ids["response_id"], seconds=BOUND)
            second = await ask(client, f"/v1/threads/{ids['thread_id']}/messages", rng.random() < 0.3)
            return [first["status"], second["status"]]

    async with (
        store,
        running_service(
            served,
            tmp_path,
            responder=tool_then_answer(REVENUE),
            store=store,
            bridge_lease_seconds=10,
            omni_rest_requests_per_minute=60_000,
            bridge_max_runs_per_user=8,
        ) as svc,
    ):
        sampler = asyncio.create_task(look())
        try:
            statuses = await asyncio.gather(*(converse(n) for n in range(24)))
            # Every run task ends, not only its response.
            await wait_until(lambda: not svc.service.runner.running, seconds=BOUND)
        finally:
            sampler.cancel()
        final = [await store.get_response(owner, response_id) for owner, response_id in seen]

    assert not broken, broken
    assert all(r is not None and r.status in TERMINAL_STATUSES and r.lease_expires_at is None for r in final)
    flat = [status for pair in statuses for status in pair]
    assert "canceled" in flat and "succeeded" in flat
    assert {call for call, _key in lossy.lost} == {"get_response", "get"}, lossy.lost
    _assert_no_lease_renewed_after_finish(lossy)
