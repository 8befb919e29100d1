"""Live events: on the worker that runs a response, followers and pollers get it as it is produced (issue 15, 1).

The runner's writer is told to wait an hour between writes (`flush_seconds`), so after its first write nothing
more reaches the store until the run ends: whatever a follower or a poller sees beyond that came from memory.
Claude's answer stalls after a few text deltas (a `stall` stream fault, until the client goes away), so the
run stays in the middle of its answer without any timing; a cancel ends it. Then the store has every event,
and a replay from it (`Last-Event-ID`) must give exactly the events, with the same ids, seen live.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.agent import Event
from omni_bridge.server._live import LiveEvents
from omni_bridge.stores import Owner, StoredEvent
from omni_bridge.testing import (
    CapturedRequest,
    FakeAnthropic,
    Reply,
    StreamFault,
    text_reply,
    tool_then_answer,
    tool_use_reply,
)
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until
from tests.server.service_helpers import REVENUE, data_of, read_events, running_service, wait_for_response

ALICE = Owner(tenant="acme", user="alice")
ANSWER = "Revenue is up in every region, most of all in the West, then the North."
STALL_AFTER_THREE_DELTAS = StreamFault("stall", after_events=6)
"""`message_start`, `ping`, `content_block_start` and three text deltas of 16 characters, then nothing."""
SO_FAR = ANSWER[:48]
Frame = tuple[int | None, str, Any]


async def _frames_until(lines: Any, done: Any) -> list[Frame]:
    """Read SSE frames from `lines` until `done(frames)` holds (or the stream ends)."""
    frames: list[Frame] = []
    fields: dict[str, str] = {}
    async for line in lines:
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields:
            seq = int(fields["id"]) if "id" in fields else None
            frames.append((seq, fields["event"], json.loads(fields["data"])))
            fields = {}
            if done(frames):
                break
    return frames


def _text_deltas(frames: list[Frame]) -> list[str]:
    return [data["text"] for _seq, kind, data in frames if kind == "text_delta"]


async def _stored(running: Any, response_id: str) -> list[StoredEvent]:
    events = await running.service.store.events_after(ALICE, response_id, 0)
    assert events is not None
    return list(events)


async def _ask(client: httpx2.AsyncClient) -> tuple[str, str]:
    """Start a thread with a question; its response's id and the path of its events."""
    ids = data_of(await client.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
    return ids["response_id"], f"/v1/responses/{ids['response_id']}/events"


async def _follow(client: httpx2.AsyncClient, path: str, done: Callable[[list[Frame]], bool]) -> list[Frame]:
    """Follow the events at `path` until `done(frames)` holds."""
    async with client.stream("GET", path) as stream:
        return await _frames_until(stream.aiter_lines(), done)


async def test_a_follower_and_a_poller_on_the_running_worker_see_the_answer_before_the_store_does(
    served: Served, tmp_path: Path
) -> None:
    fakes: list[FakeAnthropic] = []

    def respond(request: CapturedRequest) -> Reply:
        if not request.tool_results:
            return tool_use_reply(REVENUE, "Let me look that up.")
        fakes[0].add_fault(STALL_AFTER_THREE_DELTAS)  # the answer, long after the writer's first write
        return text_reply(ANSWER)

    async with running_service(served, tmp_path, responder=respond) as running:
        fakes.append(running.fake)
        running.service.runner.flush_seconds = 3600.0
        async with running.client() as alice, asyncio.timeout(20):
            response_id, path = await _ask(alice)
            seen = await _follow(alice, path, lambda f: "".join(_text_deltas(f)).endswith(SO_FAR))
            # The writer wrote its first batch at once, then waits an hour: the answer's deltas are not stored.
            stored = await _stored(running, response_id)
            assert max((e.seq for e in stored), default=0) < max(seq for seq, _kind, _data in seen if seq)
            assert SO_FAR[:16] not in json.dumps([e.event for e in stored])

            # A poll on this worker shows the text so far, which the stored response does not have yet.
            polled = data_of(await alice.get(f"/v1/responses/{response_id}"))
            assert polled["status"] == "running" and polled["parts"][-1]["text"].endswith(SO_FAR)
            in_store = await running.service.store.get_response(ALICE, response_id)
            assert in_store is not None and in_store.status == "running"
            assert SO_FAR[:16] not in in_store.model_dump_json()

            # Reconnect after the last event seen: the stream goes on with the next one, live, to the end.
            last_id = str(seen[-1][0])
            async with alice.stream("GET", path, headers={"Last-Event-ID": last_id}) as stream:
                await alice.post(f"/v1/responses/{response_id}/cancel")
                rest = await _frames_until(stream.aiter_lines(), lambda f: f[-1][1] == "end")
            assert rest[-2][1] == "final_message" and rest[-1][1] == "end"

        async with running.client() as alice:
            assert (await wait_for_response(alice, response_id))["status"] == "canceled"
            replayed = await read_events(alice, response_id)
            # The store, read once the run is over: exactly the events seen live, same ids, no gap, no repeat.
            assert replayed == seen + rest
            ids_seen = [seq for seq, _kind, _data in replayed if seq is not None]
            assert ids_seen == list(range(1, len(ids_seen) + 1))
            assert await read_events(alice, response_id, last_event_id=last_id) == rest


async def test_a_follower_on_another_worker_gets_every_event_from_the_store(served: Served, tmp_path: Path) -> None:
    responder = tool_then_answer(REVENUE)
    async with (
        running_service(served, tmp_path, responder=responder, worker_id="worker-a") as a,
        running_service(served, tmp_path, worker_id="worker-b") as b,  # the same SQLite file: a second worker
    ):
        assert a.service.store is not b.service.store
        async with a.client() as on_a, b.client() as on_b, asyncio.timeout(20):
            ids = data_of(await on_a.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            response_id = ids["response_id"]
            assert b.service.runner.live(ALICE, response_id) is None  # it runs on worker a only
            live, elsewhere = await asyncio.gather(read_events(on_a, response_id), read_events(on_b, response_id))
            assert b.service.runner.running == frozenset()
        assert [kind for _seq, kind, _data in live][-2:] == ["final_message", "end"]
        assert elsewhere == live


async def test_the_end_of_an_answer_reaches_the_store_only_with_its_final_status(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final message is written by `finish`, in the transaction that ends the response, never by the writer
    before it: a follower on another worker that reads the end from the store finds the response ended."""
    slow = text_reply(ANSWER, delay_seconds=0.1)
    async with (
        running_service(served, tmp_path, slow, worker_id="worker-a") as a,
        running_service(served, tmp_path, worker_id="worker-b") as b,
    ):
        store = a.service.store
        appended: list[str] = []
        append = store.append

        async def recording_append(response_id: str, worker_id: str, events: list[Any], **changes: Any) -> bool:
            appended.extend(event["type"] for event in events)
            return await append(response_id, worker_id, events, **changes)

        monkeypatch.setattr(store, "append", recording_append)
        ask = a.service.bridge.ask

        async def ask_that_lingers(**question: Any) -> AsyncIterator[Event]:
            # An engine may still await after its last event (closing a job or a session): the writer gets its
            # turn then, with the final message queued.
            async for event in ask(**question):
                yield event
            await asyncio.sleep(0.3)

        monkeypatch.setattr(a.service.bridge, "ask", ask_that_lingers)
        async with a.client() as on_a, b.client() as on_b, asyncio.timeout(30):
            ids = data_of(await on_a.post("/v1/threads", json={"message": {"text": "how is revenue?"}}))
            response_id = ids["response_id"]
            elsewhere = await read_events(on_b, response_id)
            status = data_of(await on_b.get(f"/v1/responses/{response_id}"))["status"]
        assert [kind for _seq, kind, _data in elsewhere][-2:] == ["final_message", "end"]
        assert status == "succeeded"
        assert "text_delta" in appended  # the writer did write while the answer streamed
        assert "final_message" not in appended, appended


async def test_a_follower_that_starts_behind_what_memory_keeps_reads_the_rest_from_the_store(
    served: Served, tmp_path: Path
) -> None:
    async with running_service(served, tmp_path, text_reply(ANSWER)) as running:
        running.fake.add_fault(STALL_AFTER_THREE_DELTAS)
        running.service.runner.live_keep = 1
        async with running.client() as alice, asyncio.timeout(20):
            response_id, path = await _ask(alice)
            first = await _follow(alice, path, lambda f: "".join(_text_deltas(f)) == SO_FAR)
            # Wait until the writer has stored them all (it writes every 50 ms): memory then keeps only one.
            live = running.service.runner.live(ALICE, response_id)
            assert live is not None
            await wait_until(lambda: live.written_seq == live.last_seq)
            assert live.after(0) is None
            again = await _follow(alice, path, lambda f: len(f) == len(first))
            assert again == first
            await alice.post(f"/v1/responses/{response_id}/cancel")


def test_live_events_keep_what_is_not_written_and_only_so_many_written_ones() -> None:
    live = LiveEvents("r1", ALICE, keep_written=2)
    for n in range(1, 8):
        assert live.add({"type": "text_delta", "text": str(n)}) == n
    assert [e.seq for e in live.after(0) or []] == list(range(1, 8))  # nothing written: all kept

    live.written(6)  # six written: more than twice two, so all but two of them go; the unwritten one stays
    assert live.after(0) is None and live.after(3) is None  # dropped: read those from the store
    assert [e.seq for e in live.after(4) or []] == [5, 6, 7]
    assert live.after(7) == []

    changed = live.changed
    live.close()
    assert changed.is_set() and live.closed
