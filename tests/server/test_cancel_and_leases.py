"""Stopping responses over HTTP: cancel on the worker that runs it or on another, a dead worker's lease, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from omni_bridge.agent.events import TextPart
from omni_bridge.server import MessageRecord, Owner, ResponseRecord
from omni_bridge.stores import STORE_FILE, SqliteStore, ThreadRecord
from omni_bridge.testing import tool_then_answer, tool_use_reply
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until
from tests.server.service_helpers import REVENUE, data_of, faults, read_events, running_service, wait_for_response


@pytest.fixture(autouse=True)
def slow_get_data(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    faults(served, slow_tool_seconds=30.0, slow_tool_name="getData")
    yield
    faults(served)


async def test_cancel_stops_the_tool_call_at_omni_and_keeps_what_was_said(served: Served, tmp_path: Path) -> None:
    first = tool_use_reply(REVENUE, "Let me look that up.")
    async with running_service(served, tmp_path, first, responder=tool_then_answer(REVENUE)) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            await wait_until(lambda: served.sandbox.stats.in_flight == 1)

            canceled = await alice.post(f"/v1/responses/{ids['response_id']}/cancel")
            assert canceled.status_code == 200
            response = await wait_for_response(alice, ids["response_id"])
            await wait_until(lambda: len(served.sandbox.stats.cancelled_tool_calls) == 1)

            assert response["status"] == "canceled" and response["error"] is None and response["cancel_requested"]
            assert served.sandbox.stats.cancelled_tool_calls[0][1] == "getData"
            message = data_of(await alice.get(f"/v1/messages/{response['message_id']}"))
            assert message["outcome"] == "canceled" and message["parts"] == [
                {"type": "text", "text": "Let me look that up."}
            ]
            events = await read_events(alice, ids["response_id"])
            assert events[-2][1] == "final_message" and events[-2][2]["message"]["outcome"] == "canceled"
            # Cancelling again changes nothing; the thread takes the next question.
            again = data_of(await alice.post(f"/v1/responses/{ids['response_id']}/cancel"))
            assert again["status"] == "canceled" and again["message_id"] == response["message_id"]
            posted = await alice.post(f"/v1/threads/{ids['thread_id']}/messages", json={"message": {"text": "hi"}})
            assert posted.status_code == 201


async def test_a_cancel_sent_to_another_worker_stops_the_run(served: Served, tmp_path: Path) -> None:
    async with (
        running_service(served, tmp_path, responder=tool_then_answer(REVENUE), worker_id="worker-a") as a,
        running_service(served, tmp_path, responder=tool_then_answer(REVENUE), worker_id="worker-b") as b,
    ):
        async with a.client() as on_a, b.client() as on_b:
            ids = data_of(await on_a.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            await wait_until(lambda: served.sandbox.stats.in_flight == 1)
            assert a.service.runner.running == {ids["response_id"]} and not b.service.runner.running

            asked = data_of(await on_b.post(f"/v1/responses/{ids['response_id']}/cancel"))
            assert asked["status"] == "running" and asked["cancel_requested"]
            ended = await wait_for_response(on_b, ids["response_id"])
            await wait_until(lambda: len(served.sandbox.stats.cancelled_tool_calls) == 1)

    assert ended["status"] == "canceled"


@pytest.mark.parametrize("how", ["stored_leased", "claimed"])
async def test_a_dead_workers_response_ends_as_worker_lost_and_earlier_messages_stay(
    served: Served, tmp_path: Path, how: str
) -> None:
    faults(served)
    async with running_service(
        served, tmp_path, responder=tool_then_answer(REVENUE, answer="{results}"), bridge_lease_seconds=1
    ) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            first = await wait_for_response(alice, ids["response_id"])
            # A second question, taken by a worker that then dies: stored leased to it as a worker that runs
            # it at once stores it (or queued, then claimed), a little written, never renewed.
            store = svc.service.store
            owner = Owner(tenant="acme", user="alice")
            question = MessageRecord(
                thread_id=ids["thread_id"], owner=owner, role="user", parts=[TextPart(text="and by month?")]
            )
            doomed = ResponseRecord(
                thread_id=ids["thread_id"], owner=owner, user_message_id=question.id, prompt="and by month?"
            )
            lease_until = datetime.now(UTC) + timedelta(seconds=0.5)
            if how == "stored_leased":
                doomed = doomed.model_copy(
                    update={"status": "running", "worker": "worker-that-died", "lease_expires_at": lease_until}
                )
            assert await store.post_message(question, doomed) is not None
            if how == "claimed":
                assert await store.claim(doomed.id, "worker-that-died", lease_until)
            assert await store.append(doomed.id, "worker-that-died", [], parts=[TextPart(text="January: ")])

            lost = await wait_for_response(alice, doomed.id)  # this worker's reaper ends it
            messages = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/messages"))
            events = await read_events(alice, doomed.id)  # no final event was written: the stream still ends

    assert lost["status"] == "failed" and lost["error"]["type"] == "worker_lost"
    assert lost["parts"] == [{"type": "text", "text": "January: "}]
    assert [(m["role"], m["outcome"]) for m in messages] == [
        ("user", None),
        ("assistant", "completed"),
        ("user", None),
        ("assistant", "errored"),
    ]
    assert messages[1]["id"] == first["message_id"] and messages[1]["parts"] == first["parts"]
    assert messages[3]["parts"] == lost["parts"]
    assert events == [(None, "end", {"response_id": doomed.id})]


class RecordsTheRunsStart(SqliteStore):
    """A real SQLite store that records how responses were stored and claimed, and makes the run's first read
    of its conversation (before its engine produced anything) wait until the run is cancelled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: list[ResponseRecord] = []
        self.claims: list[str] = []
        self.hold_first_read = False
        self.run_waits = asyncio.Event()

    async def create_thread(self, thread: ThreadRecord, message: MessageRecord, response: ResponseRecord) -> None:
        self.created.append(response)
        await super().create_thread(thread, message, response)

    async def claim(self, response_id: str, worker: str, lease_until: datetime) -> ResponseRecord | None:
        self.claims.append(response_id)
        return await super().claim(response_id, worker, lease_until)

    async def get(self, conversation_id: str) -> Any:
        task = asyncio.current_task()
        run = task is not None and task.get_name().startswith("response ")
        if run and self.hold_first_read and not self.run_waits.is_set():
            self.run_waits.set()
            await asyncio.Event().wait()  # until the cancel reaches the run
        return await super().get(conversation_id)


async def test_a_new_question_is_stored_leased_to_the_worker_that_runs_it_without_a_claim(
    served: Served, tmp_path: Path
) -> None:
    faults(served)
    store = RecordsTheRunsStart(tmp_path / STORE_FILE)
    async with store, running_service(served, tmp_path, responder=tool_then_answer(REVENUE), store=store) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            ended = await wait_for_response(alice, ids["response_id"])

    (created,) = store.created
    assert created.id == ids["response_id"] and created.status == "running"
    assert created.worker == svc.service.runner.worker_id and created.lease_expires_at is not None
    assert store.claims == []  # no claim write before the engine started
    assert ended["status"] == "succeeded" and ended["message_id"] is not None


async def test_a_cancel_before_the_engine_produced_anything_ends_canceled_without_a_message(
    served: Served, tmp_path: Path
) -> None:
    store = RecordsTheRunsStart(tmp_path / STORE_FILE)
    store.hold_first_read = True
    async with store, running_service(served, tmp_path, responder=tool_then_answer(REVENUE), store=store) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            async with asyncio.timeout(30):
                await store.run_waits.wait()
            assert (await alice.post(f"/v1/responses/{ids['response_id']}/cancel")).status_code == 200
            ended = await wait_for_response(alice, ids["response_id"])
            messages = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/messages"))
            events = await read_events(alice, ids["response_id"])
            posted = await alice.post(f"/v1/threads/{ids['thread_id']}/messages", json={"message": {"text": "hi"}})

    # As a cancel of a queued response: canceled, no assistant message (not an empty one), no events.
    assert ended["status"] == "canceled" and ended["cancel_requested"] and ended["message_id"] is None
    assert ended["error"] is not None and ended["error"]["type"] == "canceled"
    assert [m["role"] for m in messages] == ["user"]
    assert events == [(None, "end", {"response_id": ids["response_id"]})]
    assert posted.status_code == 201


async def test_a_shutdown_ends_running_responses_as_canceled_with_a_reason(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=tool_then_answer(REVENUE)) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            await wait_until(lambda: served.sandbox.stats.in_flight == 1)
    # The service has stopped (and closed its store): read what it left in the file.
    await wait_until(lambda: len(served.sandbox.stats.cancelled_tool_calls) == 1)
    async with SqliteStore(tmp_path / STORE_FILE) as store:
        ended = await store.get_response(Owner(tenant="acme", user="alice"), ids["response_id"])
        assert ended is not None and ended.status == "canceled"
        assert ended.error is not None and ended.error.type == "worker_shutdown"
        assert ended.message_id is not None
        message = await store.get_message(Owner(tenant="acme", user="alice"), ended.message_id)
        assert message is not None and message.outcome == "canceled"


async def test_a_quiet_event_stream_sends_keep_alive_comments_until_the_response_ends(
    served: Served, tmp_path: Path
) -> None:
    async with running_service(served, tmp_path, responder=tool_then_answer(REVENUE)) as svc:
        svc.service.sse_heartbeat_seconds = 0.05
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            await wait_until(lambda: served.sandbox.stats.in_flight == 1)
            lines: list[str] = []
            async with asyncio.timeout(10), alice.stream("GET", f"/v1/responses/{ids['response_id']}/events") as s:
                async for line in s.aiter_lines():
                    lines.append(line)
                    if line == ": keep-alive" and lines.count(line) == 2:
                        await alice.post(f"/v1/responses/{ids['response_id']}/cancel")
                    if line == "event: end":
                        break
    frames = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert frames[-2:] == ["final_message", "end"]
    assert lines.count(": keep-alive") >= 2
