"""The `ServiceStore` contract, as tests any backend must pass (`test_sqlite_store.py`, `test_postgres_store.py`).

Use it from a backend's test module by importing the tests and providing one fixture:

```python
from tests.stores.service_contract import *  # noqa: F403  (pytest collects the imported test functions)


@pytest.fixture
async def store() -> AsyncIterator[ServiceStore]:
    '''An open, empty store, on the test's event loop; closed after the test.'''
    store = await open_my_backend(...)
    try:
        yield store
    finally:
        await store.aclose()
```

Nothing here knows the backend: every check goes through the protocol. Times are explicit (`lease_until`,
`expire_leases(now)` in the future) so no test waits for a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from omni_bridge.agent.events import TextPart, ThinkingPart
from omni_bridge.stores import (
    Feedback,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ServiceStore,
    ThreadRecord,
    WebhookTarget,
)

__all__ = [
    "test_a_canceled_queued_response_cannot_be_claimed_and_frees_the_thread",
    "test_a_finished_response_is_returned_as_it_is_by_cancel",
    "test_a_queued_response_never_claimed_by_its_start_deadline_ends_as_worker_lost",
    "test_a_record_of_another_owner_does_not_exist",
    "test_a_response_owner_is_found_within_its_tenant_only",
    "test_a_response_stored_running_under_a_lease_needs_no_claim_and_is_reaped_when_its_lease_runs_out",
    "test_a_running_response_is_asked_to_stop_and_its_worker_sees_it",
    "test_a_thread_is_written_with_its_first_message_and_queued_response",
    "test_a_webhook_secret_is_kept_for_the_runner",
    "test_an_expired_lease_ends_the_response_as_worker_lost_and_keeps_what_was_written",
    "test_events_are_numbered_in_order_and_replay_from_any_point",
    "test_feedback_is_recorded_on_an_assistant_message_and_replaced",
    "test_finish_with_first_seq_skips_the_events_an_append_stored_first_and_a_later_append_is_refused",
    "test_finish_writes_the_last_events_and_progress_numbered_on_from_the_appended_ones",
    "test_finish_writes_the_message_status_and_error_and_releases_the_lease",
    "test_jobs_follow_the_one_active_response_rule",
    "test_only_one_response_is_active_per_thread",
    "test_only_one_worker_claims_a_response_and_only_it_writes",
    "test_threads_are_listed_most_recently_updated_first_and_page_on_before",
    "test_wait_for_change_wakes_on_a_change_and_returns_after_its_timeout",
]

ALICE = Owner(tenant="acme", user="alice")
BOB = Owner(tenant="acme", user="bob")
ALICE_ELSEWHERE = Owner(tenant="globex", user="alice")
"""Same user id, another tenant: a different owner."""


def _now() -> datetime:
    return datetime.now(UTC)


def _lease(seconds: float = 60.0) -> datetime:
    return _now() + timedelta(seconds=seconds)


def new_thread(owner: Owner, text: str = "revenue by region") -> tuple[ThreadRecord, MessageRecord, ResponseRecord]:
    """A thread with its first user message and the queued response answering it."""
    thread = ThreadRecord(owner=owner, engine="omni", title=text)
    return (thread, *new_message(thread, text))


def new_message(thread: ThreadRecord, text: str) -> tuple[MessageRecord, ResponseRecord]:
    message = MessageRecord(thread_id=thread.id, owner=thread.owner, role="user", parts=[TextPart(text=text)])
    response = ResponseRecord(thread_id=thread.id, owner=thread.owner, user_message_id=message.id, prompt=text)
    return message, response


def answer(response: ResponseRecord, text: str = "West: 42") -> MessageRecord:
    return MessageRecord(
        thread_id=response.thread_id,
        owner=response.owner,
        role="assistant",
        parts=[TextPart(text=text)],
        outcome="completed",
        response_id=response.id,
    )


async def started(store: ServiceStore, owner: Owner = ALICE) -> tuple[ThreadRecord, ResponseRecord]:
    """A thread whose first response is claimed by worker `w1`."""
    thread, message, response = new_thread(owner)
    await store.create_thread(thread, message, response)
    claimed = await store.claim(response.id, "w1", _lease())
    assert claimed is not None
    return thread, claimed


async def test_a_thread_is_written_with_its_first_message_and_queued_response(store: ServiceStore) -> None:
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)

    stored = await store.get_thread(ALICE, thread.id)
    assert stored is not None and stored.id == thread.id and stored.current_response_id == response.id
    assert await store.list_messages(ALICE, thread.id) == [message]
    assert await store.get_message(ALICE, message.id) == message
    polled = await store.get_response(ALICE, response.id)
    assert polled is not None and polled.status == "queued" and polled.prompt == "revenue by region"
    assert await store.events_after(ALICE, response.id, 0) == []


async def test_a_record_of_another_owner_does_not_exist(store: ServiceStore) -> None:
    thread, response = await started(store)
    await store.finish(response.id, "w1", "succeeded", message=answer(response))
    messages = await store.list_messages(ALICE, thread.id)
    assert messages is not None and len(messages) == 2
    assistant = messages[1]

    for other in (BOB, ALICE_ELSEWHERE):
        assert await store.get_thread(other, thread.id) is None
        assert await store.list_threads(other) == []
        assert await store.list_messages(other, thread.id) is None
        assert await store.get_message(other, assistant.id) is None
        assert await store.set_feedback(other, assistant.id, Feedback(rating="down")) is None
        assert await store.get_response(other, response.id) is None
        assert await store.events_after(other, response.id, 0) is None
        assert await store.request_cancel(other, response.id, by=other.user) is None
        message, second = new_message(thread.model_copy(update={"owner": other}), "and by month?")
        assert await store.post_message(message, second) is None
    # Nothing the other owners tried changed Alice's thread.
    assert await store.list_messages(ALICE, thread.id) == messages
    unchanged = await store.get_message(ALICE, assistant.id)
    assert unchanged is not None and unchanged.feedback is None


async def test_a_response_owner_is_found_within_its_tenant_only(store: ServiceStore) -> None:
    _, response = await started(store)

    assert await store.response_owner("acme", response.id) == ALICE
    assert await store.response_owner("globex", response.id) is None
    assert await store.response_owner("acme", "no-such-response") is None


async def test_threads_are_listed_most_recently_updated_first_and_page_on_before(store: ServiceStore) -> None:
    threads = []
    for n in range(3):
        thread, message, response = new_thread(ALICE, f"question {n}")
        await store.create_thread(thread, message, response)
        threads.append(thread)
    await store.create_thread(*new_thread(BOB))

    listed = await store.list_threads(ALICE)
    assert [t.id for t in listed] == [t.id for t in reversed(threads)]
    first_page = await store.list_threads(ALICE, limit=2)
    assert [t.id for t in first_page] == [threads[2].id, threads[1].id]
    second_page = await store.list_threads(ALICE, limit=2, before=first_page[-1].updated_at)
    assert [t.id for t in second_page] == [threads[0].id]

    # A new message moves its thread to the top.
    oldest = threads[0]
    assert (await store.request_cancel(ALICE, listed[-1].current_response_id or "", by="alice")) is not None
    message, response = new_message(oldest, "and by month?")
    assert await store.post_message(message, response) is not None
    assert (await store.list_threads(ALICE, limit=1))[0].id == oldest.id


async def test_only_one_response_is_active_per_thread(store: ServiceStore) -> None:
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)

    second_message, second = new_message(thread, "and by month?")
    assert await store.post_message(second_message, second) is None  # the first is queued
    assert await store.claim(response.id, "w1", _lease()) is not None
    assert await store.post_message(second_message, second) is None  # ... then running
    assert await store.get_response(ALICE, second.id) is None
    assert await store.get_message(ALICE, second_message.id) is None

    assert await store.finish(response.id, "w1", "succeeded", message=answer(response))
    updated = await store.post_message(second_message, second)
    assert updated is not None and updated.current_response_id == second.id
    messages = await store.list_messages(ALICE, thread.id)
    assert messages is not None and [m.role for m in messages] == ["user", "assistant", "user"]
    current = await store.get_thread(ALICE, thread.id)
    assert current is not None and current.current_response_id == second.id


async def test_only_one_worker_claims_a_response_and_only_it_writes(store: ServiceStore) -> None:
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)
    lease = _lease()

    claimed = await store.claim(response.id, "w1", lease)
    assert claimed is not None and claimed.status == "running" and claimed.worker == "w1"
    assert claimed.lease_expires_at == lease and claimed.started_at is not None
    assert await store.claim(response.id, "w2", _lease()) is None

    later = _lease(120)
    beat = await store.heartbeat(response.id, "w1", later)
    assert beat is not None and beat.lease_expires_at == later and not beat.cancel_requested
    assert await store.heartbeat(response.id, "w2", later) is None

    event: dict[str, object] = {"type": "progress", "conversation_id": thread.id, "message": "Looking at the data"}
    assert not await store.append(response.id, "w2", [event], progress="from w2")
    assert await store.events_after(ALICE, response.id, 0) == []
    assert not await store.finish(response.id, "w2", "succeeded", message=answer(response))
    polled = await store.get_response(ALICE, response.id)
    assert polled is not None and polled.status == "running" and polled.progress is None


async def test_events_are_numbered_in_order_and_replay_from_any_point(store: ServiceStore) -> None:
    thread, response = await started(store)
    deltas: list[dict[str, object]] = [
        {"type": "text_delta", "conversation_id": thread.id, "text": word} for word in ("West", ": ", "42")
    ]
    thinking = ThinkingPart(text="Revenue is in orders.")

    assert await store.append(response.id, "w1", deltas[:2], parts=[thinking, TextPart(text="West: ")])
    assert await store.append(response.id, "w1", deltas[2:], parts=[thinking, TextPart(text="West: 42")], progress="p")

    replay = await store.events_after(ALICE, response.id, 0)
    assert replay is not None
    assert [e.seq for e in replay] == [1, 2, 3] and [e.event for e in replay] == deltas
    tail = await store.events_after(ALICE, response.id, 2)
    assert tail is not None and [(e.seq, e.event) for e in tail] == [(3, deltas[2])]
    assert await store.events_after(ALICE, response.id, 3) == []

    polled = await store.get_response(ALICE, response.id)
    assert polled is not None and polled.progress == "p"
    assert polled.parts == [thinking, TextPart(text="West: 42")]  # thinking is shown while it runs


async def test_finish_writes_the_last_events_and_progress_numbered_on_from_the_appended_ones(
    store: ServiceStore,
) -> None:
    thread, response = await started(store)
    deltas: list[dict[str, object]] = [
        {"type": "text_delta", "conversation_id": thread.id, "text": word} for word in ("West", ": ", "42")
    ]
    assert await store.append(response.id, "w1", deltas[:1], progress="first")
    assert not await store.finish(response.id, "w2", "succeeded", message=answer(response), events=deltas[1:])
    assert await store.finish(
        response.id, "w1", "succeeded", message=answer(response), events=deltas[1:], progress="last"
    )

    replay = await store.events_after(ALICE, response.id, 0)
    assert replay is not None and [(e.seq, e.event) for e in replay] == list(enumerate(deltas, start=1))
    ended = await store.get_response(ALICE, response.id)
    assert ended is not None and ended.status == "succeeded" and ended.progress == "last"


async def test_finish_with_first_seq_skips_the_events_an_append_stored_first_and_a_later_append_is_refused(
    store: ServiceStore,
) -> None:
    # The runner does not wait for its writer's last append: `finish` carries every event not known to be
    # written, numbered; the append may commit before it (those are skipped) or after it (refused).
    thread, response = await started(store)
    deltas: list[dict[str, object]] = [
        {"type": "text_delta", "conversation_id": thread.id, "text": word} for word in ("West", ": ", "42", ".")
    ]
    assert await store.append(response.id, "w1", deltas[:1])
    assert await store.append(response.id, "w1", deltas[1:3])  # in flight as the run finished: committed first
    assert await store.finish(response.id, "w1", "succeeded", message=answer(response), events=deltas[1:], first_seq=2)
    assert not await store.append(response.id, "w1", deltas[3:])  # one that comes after finish

    replay = await store.events_after(ALICE, response.id, 0)
    assert replay is not None and [(e.seq, e.event) for e in replay] == list(enumerate(deltas, start=1))


async def test_a_response_stored_running_under_a_lease_needs_no_claim_and_is_reaped_when_its_lease_runs_out(
    store: ServiceStore,
) -> None:
    # What the service stores for the worker that runs a new question at once (`ResponseRunner.leased`).
    thread, message, queued = new_thread(ALICE)
    moment = _now()
    leased = queued.model_copy(
        update={"status": "running", "worker": "w1", "lease_expires_at": moment + timedelta(seconds=30)}
    )
    await store.create_thread(thread, message, leased)

    assert await store.claim(leased.id, "w2", _lease()) is None
    assert await store.append(leased.id, "w1", [], parts=[TextPart(text="West")])
    assert await store.count_active(ALICE) == (1, 1)
    # Its worker dies: no heartbeat; the reaper ends it once the lease has run out, not before.
    assert await store.expire_leases(moment + timedelta(seconds=1)) == []
    (lost,) = await store.expire_leases(moment + timedelta(seconds=31))
    assert lost.id == leased.id and lost.status == "failed" and lost.error is not None
    assert lost.error.type == "worker_lost" and lost.parts == [TextPart(text="West")]
    assert not await store.finish(leased.id, "w1", "succeeded", message=answer(leased))


async def test_finish_writes_the_message_status_and_error_and_releases_the_lease(store: ServiceStore) -> None:
    _thread, response = await started(store)
    assert await store.append(response.id, "w1", [], parts=[ThinkingPart(text="hmm"), TextPart(text="par")])
    message = answer(response, "partial answer")
    message = message.model_copy(update={"outcome": "errored"})
    error = ResponseError(type="overloaded_error", message="Claude is overloaded.")

    assert await store.finish(response.id, "w1", "failed", message=message, error=error)

    ended = await store.get_response(ALICE, response.id)
    assert ended is not None and ended.status == "failed" and ended.error == error
    assert ended.message_id == message.id and ended.finished_at is not None
    assert ended.parts == message.parts  # the finished message's parts: no thinking any more
    assert ended.lease_expires_at is None
    assert await store.get_message(ALICE, message.id) == message
    # The lease is gone: nothing more is written, the response does not end twice.
    assert not await store.append(response.id, "w1", [{"type": "progress"}])
    assert not await store.finish(response.id, "w1", "succeeded", message=None)
    assert await store.heartbeat(response.id, "w1", _lease()) is None
    assert await store.events_after(ALICE, response.id, 0) == []
    assert await store.expire_leases(_now() + timedelta(days=1)) == []


async def test_a_queued_response_never_claimed_by_its_start_deadline_ends_as_worker_lost(store: ServiceStore) -> None:
    # The worker that accepted the question died before it started the run.
    thread, message, response = new_thread(ALICE)
    response = response.model_copy(update={"lease_expires_at": _now() + timedelta(seconds=5)})
    await store.create_thread(thread, message, response)
    # A queued response with no deadline (as some callers make) is never touched.
    bobs_thread, bobs_message, bobs = new_thread(BOB)
    await store.create_thread(bobs_thread, bobs_message, bobs)

    assert await store.expire_leases(_now()) == []
    expired = await store.expire_leases(_now() + timedelta(seconds=30))

    assert [r.id for r in expired] == [response.id]
    lost = await store.get_response(ALICE, response.id)
    assert lost is not None and lost.status == "failed" and lost.error is not None
    assert lost.error.type == "worker_lost"
    assert await store.claim(response.id, "w1", _lease()) is None  # too late to start it now
    second_message, second = new_message(thread, "again?")
    assert await store.post_message(second_message, second) is not None  # and the thread takes new questions
    still = await store.get_response(BOB, bobs.id)
    assert still is not None and still.status == "queued"


async def test_a_canceled_queued_response_cannot_be_claimed_and_frees_the_thread(store: ServiceStore) -> None:
    thread, message, response = new_thread(ALICE)
    await store.create_thread(thread, message, response)

    canceled = await store.request_cancel(ALICE, response.id, by="alice")
    assert canceled is not None and canceled.status == "canceled" and canceled.finished_at is not None
    assert canceled.canceled_by == "alice"
    assert await store.claim(response.id, "w1", _lease()) is None
    second_message, second = new_message(thread, "and by month?")
    assert await store.post_message(second_message, second) is not None


async def test_a_running_response_is_asked_to_stop_and_its_worker_sees_it(store: ServiceStore) -> None:
    _thread, response = await started(store)

    asked = await store.request_cancel(ALICE, response.id, by="alice")
    assert asked is not None and asked.status == "running" and asked.cancel_requested
    beat = await store.heartbeat(response.id, "w1", _lease())
    assert beat is not None and beat.cancel_requested

    canceled = answer(response, "West: 4").model_copy(update={"outcome": "canceled"})
    assert await store.finish(response.id, "w1", "canceled", message=canceled)
    ended = await store.get_response(ALICE, response.id)
    assert ended is not None and ended.status == "canceled" and ended.canceled_by == "alice"


async def test_a_finished_response_is_returned_as_it_is_by_cancel(store: ServiceStore) -> None:
    _thread, response = await started(store)
    assert await store.finish(response.id, "w1", "succeeded", message=answer(response))

    again = await store.request_cancel(ALICE, response.id, by="alice")
    assert again is not None and again.status == "succeeded" and not again.cancel_requested


async def test_an_expired_lease_ends_the_response_as_worker_lost_and_keeps_what_was_written(
    store: ServiceStore,
) -> None:
    # An earlier exchange of the thread, finished normally.
    thread, first = await started(store)
    assert await store.finish(first.id, "w1", "succeeded", message=answer(first))
    message, response = new_message(thread, "and by month?")
    assert await store.post_message(message, response) is not None
    assert await store.claim(response.id, "dead-worker", _now() + timedelta(seconds=5)) is not None
    event: dict[str, object] = {"type": "text_delta", "conversation_id": thread.id, "text": "January"}
    assert await store.append(response.id, "dead-worker", [event], parts=[ThinkingPart(text="t"), TextPart(text="Jan")])
    # Another thread's response whose lease is still good.
    _other_thread, healthy = await started(store, BOB)
    await store.heartbeat(healthy.id, "w1", _now() + timedelta(hours=1))

    assert await store.expire_leases(_now()) == []  # not yet run out
    expired = await store.expire_leases(_now() + timedelta(seconds=30))

    assert [r.id for r in expired] == [response.id]
    lost = await store.get_response(ALICE, response.id)
    assert lost is not None and lost.status == "failed"
    assert lost.error is not None and lost.error.type == "worker_lost" and lost.error.message
    assert lost.parts == [TextPart(text="Jan")] and lost.message_id is not None
    written = await store.get_message(ALICE, lost.message_id)
    assert written is not None and written.outcome == "errored" and written.parts == [TextPart(text="Jan")]
    replay = await store.events_after(ALICE, response.id, 0)
    assert replay is not None and [e.event for e in replay] == [event]
    messages = await store.list_messages(ALICE, thread.id)
    assert messages is not None and [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    # The dead worker cannot write any more, and the thread takes new messages.
    assert await store.heartbeat(response.id, "dead-worker", _lease()) is None
    assert not await store.append(response.id, "dead-worker", [event])
    assert not await store.finish(response.id, "dead-worker", "succeeded", message=answer(response))
    assert await store.post_message(*new_message(thread, "and by week?")) is not None
    still = await store.get_response(BOB, healthy.id)
    assert still is not None and still.status == "running"


async def test_feedback_is_recorded_on_an_assistant_message_and_replaced(store: ServiceStore) -> None:
    _thread, response = await started(store)
    reply = answer(response)
    assert await store.finish(response.id, "w1", "succeeded", message=reply)

    first = await store.set_feedback(ALICE, reply.id, Feedback(rating="down", comment="wrong region"))
    assert first is not None and first.feedback is not None and first.feedback.rating == "down"
    second = await store.set_feedback(ALICE, reply.id, Feedback(rating="up"))
    assert second is not None and second.feedback is not None and second.feedback.rating == "up"
    stored = await store.get_message(ALICE, reply.id)
    assert stored is not None and stored.feedback == second.feedback and stored.parts == reply.parts
    assert await store.set_feedback(ALICE, "msg_missing", Feedback(rating="up")) is None


async def test_jobs_follow_the_one_active_response_rule(store: ServiceStore) -> None:
    thread, message, response = new_thread(ALICE)
    response = response.model_copy(update={"origin": "job"})
    assert await store.create_job(thread, message, response)

    follow_message, follow = new_message(thread, "and by month?")
    assert not await store.create_job(None, follow_message, follow)
    assert await store.claim(response.id, "w1", _lease()) is not None
    assert await store.finish(response.id, "w1", "succeeded", message=answer(response))
    assert await store.create_job(None, follow_message, follow)
    polled = await store.get_response(ALICE, follow.id)
    assert polled is not None and polled.status == "queued"
    stored = await store.get_response(ALICE, response.id)
    assert stored is not None and stored.origin == "job"


async def test_a_webhook_secret_is_kept_for_the_runner(store: ServiceStore) -> None:
    thread, message, response = new_thread(ALICE)
    target = WebhookTarget(url="https://hooks.example.com/omni", secret=SecretStr("s3cret"), metadata={"k": 1})
    response = response.model_copy(update={"origin": "job", "webhook": target})
    assert await store.create_job(thread, message, response)

    stored = await store.get_response(ALICE, response.id)
    assert stored is not None and stored.webhook is not None
    assert stored.webhook.secret.get_secret_value() == "s3cret" and stored.webhook.metadata == {"k": 1}
    assert "s3cret" not in repr(stored)


async def test_wait_for_change_wakes_on_a_change_and_returns_after_its_timeout(store: ServiceStore) -> None:
    thread, response = await started(store)
    # Nothing changes: it returns on its own once the (short) timeout has passed.
    async with asyncio.timeout(5):
        await store.wait_for_change(response.id, 0.05)

    event: dict[str, object] = {"type": "progress", "conversation_id": thread.id, "message": "step"}
    await _wakes(store, response.id, lambda: store.append(response.id, "w1", [event]))
    await _wakes(store, response.id, lambda: store.request_cancel(ALICE, response.id, by="alice"))


async def _wakes(store: ServiceStore, response_id: str, change: Callable[[], Awaitable[object]]) -> None:
    """A waiter with a long timeout returns soon after `change`.

    A backend may start listening a little after the call (PostgreSQL's LISTEN), so the change is made again
    until the waiter returns, a bounded number of times; a waiter that ignores changes fails the test.
    """
    waiting = asyncio.create_task(store.wait_for_change(response_id, 60.0))
    try:
        async with asyncio.timeout(5):
            while not waiting.done():
                await change()
                await asyncio.wait([waiting], timeout=0.2)
        await waiting
    finally:
        waiting.cancel()
