"""`OmniEngine` against the sandbox's AI Jobs over loopback: answers per user, progress, cancel, busy, failures."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.engines import OmniEngine, Run
from omni_bridge.agent.events import (
    ChartReady,
    ErrorEvent,
    Event,
    FinalMessage,
    Progress,
    ProvenancePart,
    StructuredActionPart,
    TextDelta,
    new_message_id,
)
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import JobState, MemoryArtifactStore, OmniRestClient
from tests.conftest import Served


@pytest.fixture(scope="module")
def stalled() -> Iterator[Served]:
    """A sandbox whose jobs stay QUEUED (30 s steps): they are active for as long as a test needs."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=30))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


@pytest.fixture(scope="module")
def slow() -> Iterator[Served]:
    """A sandbox whose jobs take about 0.7 s, so that a second question overlaps the first."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.15))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


class Timeline:
    """What happened, in order: the conversation's saves (with the Omni conversation id then) and the events."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []

    async def save(self, conversation: Conversation) -> None:
        self.entries.append(("save", conversation.omni_conversation_id))

    def first(self, kind: str, predicate: Any = lambda value: True) -> int:
        return next(i for i, (k, value) in enumerate(self.entries) if k == kind and predicate(value))


class Waits:
    """A `sleep` for the engine that records each wait, then waits for real or only lets other tasks run."""

    def __init__(self, *, real: bool) -> None:
        self.asked: list[float] = []
        self._real = real

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(seconds if self._real else 0)


def conversation_for(served: Served, external_id: str) -> Conversation:
    identity = OmniIdentity(external_id=external_id, user_id=embed_user_id(external_id), server=served.url)
    return Conversation(identity=identity, engine="omni")


Connect = Callable[[Served], OmniRestClient]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Opens REST clients to a sandbox with its org key; all are closed after the test."""
    opened: list[OmniRestClient] = []

    def open_client(served: Served) -> OmniRestClient:
        opened.append(OmniRestClient(served.url, served.org_key))
        return opened[-1]

    yield open_client
    for client in opened:
        await client.aclose()


def engine_for(rest: OmniRestClient, **options: Any) -> OmniEngine:
    options = {"artifacts": MemoryArtifactStore(), "poll_initial": 0.005, "poll_max": 0.02, **options}
    return OmniEngine(rest, **options)


def start(conversation: Conversation, question: str, timeline: Timeline | None = None) -> Run:
    save = timeline.save if timeline is not None else None
    return Run(conversation=conversation, question=question, response_id=new_message_id(), save=save)


@contextlib.asynccontextmanager
async def events_of(engine: OmniEngine, run: Run) -> AsyncIterator[AsyncGenerator[Event, None]]:
    """The run's event stream, closed on the way out (the engine's `run` is an async generator)."""
    stream = engine.run(run)
    assert isinstance(stream, AsyncGenerator)
    async with contextlib.aclosing(stream):
        yield stream


async def ask(engine: OmniEngine, run: Run, timeline: Timeline | None = None) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(10), events_of(engine, run) as stream:
        async for event in stream:
            events.append(event)
            if timeline is not None:
                timeline.entries.append(("event", event.type))
    return events


def final(events: list[Event]) -> FinalMessage:
    last = events[-1]
    assert isinstance(last, FinalMessage)
    assert sum(isinstance(event, FinalMessage) for event in events) == 1
    return last


def jobs_in(served: Served, omni_conversation_id: str | None) -> list[str]:
    """The sandbox's jobs of one Omni conversation, oldest first."""
    return [job.id for job in served.sandbox.jobs.jobs.values() if job.conversation_id == omni_conversation_id]


# --- answering ----------------------------------------------------------------------------------------------


async def test_answers_as_the_conversations_user_with_progress_then_chart_then_text_then_final(
    served: Served, connect: Connect
) -> None:
    rest, artifacts, waits = connect(served), MemoryArtifactStore(), Waits(real=False)
    engine = engine_for(rest, artifacts=artifacts, sleep=waits, poll_initial=0.005, poll_max=0.02)
    alice, timeline = conversation_for(served, "alice"), Timeline()

    events = await ask(engine, start(alice, "revenue by region", timeline), timeline)

    kinds = [event.type for event in events]
    progress = [event.message for event in events if isinstance(event, Progress)]
    assert progress and kinds == ["progress"] * len(progress) + ["chart_ready", "text_delta", "final_message"]
    assert "Running the query" in progress  # the sandbox's own progress lines come through
    assert all(a != b for a, b in itertools.pairwise(progress))  # one event per change, not per poll
    assert len(waits.asked) > len(progress)
    assert waits.asked[:4] == [0.005, 0.01, 0.02, 0.02] and max(waits.asked) == 0.02  # backoff up to poll_max
    message = final(events).message
    assert message.outcome == "completed" and message.id == events[-1].response_id
    assert "West" in message.text and "East" not in message.text
    delta = events[-2]
    assert isinstance(delta, TextDelta) and delta.text == message.text
    chart_ready = events[-3]
    assert isinstance(chart_ready, ChartReady)
    assert [point.x for point in chart_ready.chart.series[0].points] == ["West"]
    assert [part.type for part in message.parts] == ["text", "chart", "provenance", "structured_action"]
    provenance = message.parts[2]
    assert isinstance(provenance, ProvenancePart) and [q.topic for q in provenance.queries] == ["order_items"]
    assert provenance.queries[0].access_filters == {"customers.region": "West"}  # alice's row-level security
    link = message.parts[-1]
    assert isinstance(link, StructuredActionPart) and link.action == "open_in_omni"
    assert link.url is not None and link.url.endswith(f"/chat/{alice.omni_conversation_id}")

    # The table is kept for alice alone.
    assert chart_ready.result_id is not None
    kept = await artifacts.get(chart_ready.result_id, owner=alice.identity.user_id)
    assert kept is not None and kept.rows(0, 10) == [["West", "1700890.55"]]
    assert await artifacts.get(chart_ready.result_id, owner=embed_user_id("bob")) is None

    # Omni ran the job as alice, and the Omni conversation id was saved before the first progress event.
    (job_id,) = jobs_in(served, alice.omni_conversation_id)
    status = await rest.get_job(job_id)
    assert status.user_id == alice.identity.user_id and status.state is JobState.COMPLETE
    assert timeline.first("save", lambda omni_id: omni_id is not None) < timeline.first("event")
    assert alice.messages == [
        {"role": "user", "content": [{"type": "text", "text": "revenue by region"}]},
        {"role": "assistant", "content": [{"type": "text", "text": message.text}]},
    ]


async def test_each_user_gets_only_their_own_rows_for_the_same_question(served: Served, connect: Connect) -> None:
    engine = engine_for(connect(served))
    alice, bob = conversation_for(served, "alice"), conversation_for(served, "bob")

    for_alice = final(await ask(engine, start(alice, "revenue by region"))).message.text
    for_bob = final(await ask(engine, start(bob, "revenue by region"))).message.text

    assert "West" in for_alice and "East" not in for_alice
    assert "East" in for_bob and "West" not in for_bob
    assert alice.omni_conversation_id != bob.omni_conversation_id


async def test_a_second_question_continues_the_same_omni_conversation(served: Served, connect: Connect) -> None:
    engine = engine_for(connect(served))
    alice = conversation_for(served, "alice")

    first = final(await ask(engine, start(alice, "revenue by region")))
    omni_conversation_id = alice.omni_conversation_id
    second = final(await ask(engine, start(alice, "orders by category")))

    assert omni_conversation_id is not None and alice.omni_conversation_id == omni_conversation_id
    assert len(jobs_in(served, omni_conversation_id)) == 2
    assert first.message.outcome == second.message.outcome == "completed"
    assert "Order Count" in second.message.text
    assert [m["role"] for m in alice.messages] == ["user", "assistant", "user", "assistant"]


async def test_picks_the_first_shared_model_once_and_honours_a_pinned_one(served: Served, connect: Connect) -> None:
    rest = connect(served)
    shared = await rest.list_models(model_kind="SHARED")
    before = served.sandbox.stats.counts["rest.list_models"]
    engine = engine_for(connect(served))
    alice = conversation_for(served, "alice")

    await ask(engine, start(alice, "revenue by region"))
    await ask(engine, start(alice, "orders by region"))
    pinned = conversation_for(served, "alice")
    await ask(engine_for(connect(served), model_id=shared[1].id), start(pinned, "how many units by warehouse"))

    first_jobs = [await rest.get_job(job_id) for job_id in jobs_in(served, alice.omni_conversation_id)]
    (pinned_job,) = [await rest.get_job(job_id) for job_id in jobs_in(served, pinned.omni_conversation_id)]
    assert [job.model_id for job in first_jobs] == [shared[0].id, shared[0].id]
    assert pinned_job.model_id == shared[1].id
    assert served.sandbox.stats.counts["rest.list_models"] - before == 1


# --- failures -----------------------------------------------------------------------------------------------


async def test_a_failed_job_ends_with_omnis_error_and_an_errored_message(served: Served, connect: Connect) -> None:
    alice = conversation_for(served, "alice")

    events = await ask(engine_for(connect(served)), start(alice, "what is the meaning of life"))

    error = events[-2]
    assert isinstance(error, ErrorEvent)
    assert error.error_type == "QUERY_GENERATION_ERROR" and not error.retryable
    assert error.message.startswith("Could not turn 'what is the meaning of life' into a query")
    message = final(events).message
    assert message.outcome == "errored" and message.text == error.message
    assert not any(isinstance(event, TextDelta | ChartReady) for event in events)
    assert alice.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": error.message}]}


async def test_an_unknown_pinned_model_surfaces_omnis_404_without_the_api_key(served: Served, connect: Connect) -> None:
    model_id = str(uuid.uuid4())
    alice = conversation_for(served, "alice")

    events = await ask(engine_for(connect(served), model_id=model_id), start(alice, "revenue by region"))

    assert [event.type for event in events] == ["error", "final_message"]
    error = events[0]
    assert isinstance(error, ErrorEvent) and error.error_type == "not_found" and not error.retryable
    assert f"Model {model_id} not found" in error.message
    assert final(events).message.outcome == "errored"
    assert alice.omni_conversation_id is None
    assert all(served.org_key not in event.model_dump_json() for event in events)


async def test_a_job_that_outlives_the_timeout_is_cancelled_and_the_run_errors(
    stalled: Served, connect: Connect
) -> None:
    alice = conversation_for(stalled, "alice")

    events = await ask(engine_for(connect(stalled), timeout=0.2), start(alice, "revenue by region"))

    error = events[-2]
    assert isinstance(error, ErrorEvent) and error.error_type == "timeout"
    assert final(events).message.outcome == "errored"
    (job_id,) = jobs_in(stalled, alice.omni_conversation_id)
    status = await connect(stalled).get_job(job_id, user_id=alice.identity.user_id)
    assert status.state is JobState.CANCELLED


# --- one active job per conversation (409) ------------------------------------------------------------------


async def test_waits_for_an_earlier_job_of_the_conversation_then_answers(slow: Served, connect: Connect) -> None:
    rest = connect(slow)
    alice = conversation_for(slow, "alice")
    models = await rest.list_models()
    earlier = await rest.create_job(model_id=models[0].id, prompt="orders by region", user_id=alice.identity.user_id)
    alice.omni_conversation_id = earlier.conversation_id
    waits = Waits(real=True)

    events = await ask(
        engine_for(connect(slow), sleep=waits, poll_initial=0.05, poll_max=0.2, busy_retries=30),
        start(alice, "revenue by region"),
    )

    assert final(events).message.outcome == "completed" and "West" in final(events).message.text
    assert waits.asked  # the first submission was refused with 409, and the engine waited
    assert (await rest.get_job(earlier.job_id)).state is JobState.COMPLETE
    assert jobs_in(slow, earlier.conversation_id)[0] == earlier.job_id
    assert len(jobs_in(slow, earlier.conversation_id)) == 2


async def test_a_busy_conversation_without_retries_ends_conversation_busy(stalled: Served, connect: Connect) -> None:
    rest = connect(stalled)
    alice = conversation_for(stalled, "alice")
    models = await rest.list_models()
    earlier = await rest.create_job(model_id=models[0].id, prompt="orders by region", user_id=alice.identity.user_id)
    alice.omni_conversation_id = earlier.conversation_id

    events = await ask(engine_for(connect(stalled), busy_retries=0), start(alice, "revenue by region"))

    assert [event.type for event in events] == ["error", "final_message"]
    error = events[0]
    assert isinstance(error, ErrorEvent) and error.error_type == "conversation_busy" and error.retryable
    assert final(events).message.outcome == "errored"
    assert jobs_in(stalled, earlier.conversation_id) == [earlier.job_id]


# --- cancellation -------------------------------------------------------------------------------------------


async def test_cancelling_the_run_cancels_the_omni_job_and_raises(stalled: Served, connect: Connect) -> None:
    alice, timeline = conversation_for(stalled, "alice"), Timeline()
    engine = engine_for(connect(stalled))
    running = asyncio.Event()

    async def consume() -> None:
        async for event in engine.run(start(alice, "revenue by region", timeline)):
            timeline.entries.append(("event", event.type))
            if isinstance(event, Progress):
                running.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        await running.wait()
    task.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await task

    (job_id,) = jobs_in(stalled, alice.omni_conversation_id)
    status = await connect(stalled).get_job(job_id, user_id=alice.identity.user_id)
    assert status.state is JobState.CANCELLED and status.cancelled_by == alice.identity.user_id
    assert timeline.entries[-2:] == [("event", "progress"), ("save", alice.omni_conversation_id)]  # saved at the end


async def test_closing_the_event_stream_cancels_the_omni_job(stalled: Served, connect: Connect) -> None:
    alice = conversation_for(stalled, "alice")
    engine = engine_for(connect(stalled))

    async with asyncio.timeout(10), events_of(engine, start(alice, "revenue by region")) as stream:
        async for event in stream:
            if isinstance(event, Progress):
                break

    (job_id,) = jobs_in(stalled, alice.omni_conversation_id)
    status = await connect(stalled).get_job(job_id, user_id=alice.identity.user_id)
    assert status.state is JobState.CANCELLED


async def test_a_job_cancelled_in_omni_ends_the_run_canceled(stalled: Served, connect: Connect) -> None:
    rest = connect(stalled)
    alice = conversation_for(stalled, "alice")
    events: list[Event] = []

    async with (
        asyncio.timeout(10),
        events_of(engine_for(connect(stalled)), start(alice, "revenue by region")) as stream,
    ):
        async for event in stream:
            events.append(event)
            if len(events) == 1:  # the job is queued: an admin cancels it in Omni
                (job_id,) = jobs_in(stalled, alice.omni_conversation_id)
                await rest.cancel_job(job_id)

    assert [event.type for event in events] == ["progress", "final_message"]
    message = final(events).message
    assert message.outcome == "canceled" and message.text == ""
    assert alice.messages == [{"role": "user", "content": [{"type": "text", "text": "revenue by region"}]}]
