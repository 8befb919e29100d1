"""Stream integrity of the claude engine: a turn counts only once its stream reached `message_stop`.

The fake Messages API breaks streams after their headers (drop, early end, malformed frame, stall) at a
chosen event; the sandbox answers the tools and counts their calls. A broken turn the user saw nothing of
is asked again; one they saw part of ends `errored`, retryable, its text marked partial; a `tool_use`
whose input was cut never runs. The same holds through `omni-bridge ask --json` and the HTTP service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omni_bridge.agent import (
    Bridge,
    ErrorEvent,
    Event,
    TextDelta,
    TextPart,
    ToolCallStarted,
    repair_transcript,
)
from omni_bridge.testing import (
    CapturedRequest,
    FakeAnthropic,
    FaultKind,
    StreamFault,
    ToolCall,
    stream_error_reply,
    text_reply,
    tool_then_answer,
    tool_use_reply,
)
from tests.agent.claude_helpers import settings_for
from tests.agent.test_claude_engine import collect, final_of
from tests.cli.console_helpers import clean_env, run_cli
from tests.conftest import Served
from tests.server.service_helpers import data_of, read_events, running_service, wait_for_response

REVENUE = ToolCall("getData", {"prompt": "revenue by region"})
ANSWER = "West leads with 1.2M."
SHOWN = ANSWER[:16]
"""What the user saw of `ANSWER` when its stream broke after 4 events (the fake sends 16-character deltas)."""
KINDS: list[FaultKind] = ["disconnect", "truncate", "malformed", "stall"]
IDLE = 1.0
"""The stream idle timeout of these tests: a `stall` fault stalls until the client gives up."""

# Where a fault strikes, counted in SSE events (`ping` included) of the fake's frames:
BEFORE_FIRST_EVENT = 0
IN_TEXT = 4  # message_start, ping, content_block_start, the first text delta; then the fault
IN_TOOL_INPUT = 4  # message_start, ping, content_block_start (tool_use), the first input_json_delta
IN_TOOL_INPUT_AFTER_TEXT = 8  # ... text block (start, 2 deltas, stop), tool_use start, its first input fragment


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    yield


def settings(served: Served, url: str, **overrides: Any) -> Any:
    return settings_for(served, url, anthropic_stream_idle_seconds=IDLE, **overrides)


def tool_calls(served: Served) -> int:
    """The model's tool calls that ran (not the selectors the bridge calls from its own code: auto-pinning)."""
    return sum(n for (_, tool), n in served.sandbox.stats.tool_calls.items() if tool not in ("pickModel", "pickTopic"))


def sent_text(events: list[Event]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def fault_of(request: CapturedRequest) -> FaultKind | None:
    return request.fault.kind if request.fault is not None else None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_broken_before_its_first_event_is_asked_again_and_answers(
    served: Served, kind: FaultKind
) -> None:
    fake = FakeAnthropic(
        responder=tool_then_answer(REVENUE, answer="Revenue: {results}"),
        faults=[StreamFault(kind, after_events=BEFORE_FIRST_EVENT)],
    )
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="revenue by region", conversation_id="conv_first"))
        stored = await bridge.store.get("conv_first")

    final = final_of(events).message
    assert final.outcome == "completed" and "West" in final.text
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    assert [fault_of(r) for r in fake.requests] == [kind, None, None]  # the broken one, its retry, the answer
    assert tool_calls(served) == 1
    assert stored is not None and repair_transcript(stored.messages) == stored.messages
    assert len(stored.messages) == 4  # question, tool turn, results, answer: nothing of the broken stream


@pytest.mark.parametrize("kind", KINDS)
async def test_a_tool_call_cut_inside_its_input_never_runs_and_the_turn_is_asked_again(
    served: Served, kind: FaultKind
) -> None:
    fake = FakeAnthropic(
        responder=tool_then_answer(REVENUE, answer="Revenue: {results}"),
        faults=[StreamFault(kind, after_events=IN_TOOL_INPUT)],
    )
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="revenue by region"))

    assert final_of(events).message.outcome == "completed"
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert len(started) == 1 and started[0].arguments == {"prompt": "revenue by region"}
    assert tool_calls(served) == 1  # once, from the retried turn; never with the half input
    assert [fault_of(r) for r in fake.requests] == [kind, None, None]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_broken_after_text_was_shown_ends_errored_with_the_text_marked_partial(
    served: Served, kind: FaultKind
) -> None:
    fake = FakeAnthropic(responder=lambda request: text_reply(ANSWER), faults=[StreamFault(kind, after_events=IN_TEXT)])
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="who leads?", conversation_id="conv_partial"))
        stored = await bridge.store.get("conv_partial")

    assert sent_text(events) == SHOWN
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.error_type == "stream_interrupted" and error.retryable
    final = final_of(events).message
    assert final.outcome == "errored"
    partial, note = final.parts[0], final.parts[1]
    assert partial == TextPart(text=SHOWN, partial=True)
    assert isinstance(note, TextPart) and not note.partial and "incomplete" in note.text
    # On the wire the flag appears only where it is true: a complete text part looks as it always did.
    wire = json.loads(final.model_dump_json())["parts"]
    assert wire[:2] == [{"type": "text", "text": SHOWN, "partial": True}, {"type": "text", "text": note.text}]
    assert len(fake.requests) == 1  # shown text cannot be taken back: not asked again
    # The transcript keeps the question and nothing of the half answer.
    assert stored is not None and stored.messages[-1] == {
        "role": "user",
        "content": [{"type": "text", "text": "who leads?"}],
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_a_tool_call_cut_after_its_turns_text_was_shown_never_runs_and_the_answer_errors(
    served: Served, kind: FaultKind
) -> None:
    first = tool_use_reply(REVENUE, text="Let me look that up.")
    fake = FakeAnthropic(first, faults=[StreamFault(kind, after_events=IN_TOOL_INPUT_AFTER_TEXT)])
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="revenue by region", conversation_id="conv_cut"))
        stored = await bridge.store.get("conv_cut")

    assert not [e for e in events if isinstance(e, ToolCallStarted)]
    assert tool_calls(served) == 0
    final = final_of(events).message
    assert final.outcome == "errored" and final.parts[0] == TextPart(text="Let me look that up.", partial=True)
    assert [e.error_type for e in events if isinstance(e, ErrorEvent)] == ["stream_interrupted"]
    assert stored is not None and repair_transcript(stored.messages) == stored.messages
    assert not any(m["role"] == "assistant" for m in stored.messages)


async def test_streams_that_keep_breaking_end_errored_and_retryable_once_the_retries_are_spent(served: Served) -> None:
    fake = FakeAnthropic(
        responder=lambda request: text_reply(ANSWER),
        faults=[StreamFault("disconnect", after_events=BEFORE_FIRST_EVENT, times=None)],
    )
    async with fake.serve() as url, Bridge(settings(served, url, anthropic_max_retries=2)) as bridge:
        events = await collect(bridge.ask(user="alice", question="who leads?"))

    assert len(fake.requests) == 3 and all(r.fault is not None for r in fake.requests)  # the first, then 2 retries
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.error_type == "stream_interrupted" and error.retryable
    final = final_of(events).message
    assert final.outcome == "errored" and final.text == error.message
    assert not any(isinstance(part, TextPart) and part.partial for part in final.parts)


@pytest.mark.parametrize("kind", ["disconnect", "truncate"])
async def test_ask_json_prints_its_json_with_an_errored_outcome_when_the_stream_breaks(
    served: Served, tmp_path: Path, kind: FaultKind
) -> None:
    fake = FakeAnthropic(responder=lambda request: text_reply(ANSWER), faults=[StreamFault(kind, after_events=IN_TEXT)])
    async with fake.serve() as url:
        env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url)
        done = await run_cli("ask", "who leads?", "--sandbox", "--json", env=env, cwd=tmp_path)

    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    answer = json.loads(done.stdout)  # the whole of stdout is the one object
    assert answer["outcome"] == "errored" and answer["engine"] == "claude"
    assert answer["parts"][0] == {"type": "text", "text": SHOWN, "partial": True}
    assert [(e["error_type"], e["retryable"]) for e in answer["errors"]] == [("stream_interrupted", True)]


async def test_ask_json_prints_its_json_when_omni_cannot_be_reached(tmp_path: Path) -> None:
    env = clean_env(tmp_path, OMNI_BASE_URL="http://127.0.0.1:9", OMNI_API_KEY="org-key", OMNI_MAX_RETRIES="0")
    done = await run_cli("ask", "who leads?", "--user", "alice", "--engine", "omni", "--json", env=env, cwd=tmp_path)

    assert done.code == 1, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "errored" and answer["user"] == "alice"
    assert [e["error_type"] for e in answer["errors"]] == ["omni_unavailable"]
    assert "Omni could not be reached" in answer["parts"][0]["text"]


async def test_serve_ends_a_response_whose_stream_broke_failed_with_the_stream_error(
    served: Served, tmp_path: Path
) -> None:
    async with running_service(served, tmp_path, responder=lambda request: text_reply(ANSWER)) as svc:
        svc.fake.add_fault(StreamFault("disconnect", after_events=IN_TEXT))
        async with svc.client() as alice:
            created = data_of(await alice.post("/v1/threads", json={"message": {"text": "who leads?"}}))
            done = await wait_for_response(alice, created["response_id"])
            frames = await read_events(alice, created["response_id"])

    assert done["status"] == "failed"
    assert done["error"]["type"] == "stream_interrupted"
    assert done["parts"][0] == {"type": "text", "text": SHOWN, "partial": True}
    [error] = [data for _seq, event, data in frames if event == "error"]
    assert error["error_type"] == "stream_interrupted" and error["retryable"] is True


async def test_an_error_frame_before_any_text_is_asked_again_and_answers(served: Served) -> None:
    # The SDK retries a request that failed, but not a stream that the API ended with `event: error`.
    fake = FakeAnthropic(stream_error_reply("overloaded_error"), text_reply(ANSWER))
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="who leads?"))

    final = final_of(events).message
    assert (final.outcome, final.text) == ("completed", ANSWER)
    assert len(fake.requests) == 2
    assert not [e for e in events if isinstance(e, ErrorEvent)]


async def test_an_error_frame_after_text_was_shown_ends_errored_with_that_text_marked_partial(served: Served) -> None:
    fake = FakeAnthropic(stream_error_reply("overloaded_error", text="West leads"), text_reply(ANSWER))
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="who leads?"))

    assert sent_text(events) == "West leads" and len(fake.requests) == 1
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert (error.error_type, error.retryable) == ("overloaded_error", True)
    final = final_of(events).message
    assert final.outcome == "errored" and final.parts[0] == TextPart(text="West leads", partial=True)


async def test_an_error_frame_that_is_not_worth_retrying_ends_the_answer_at_once(served: Served) -> None:
    fake = FakeAnthropic(stream_error_reply("invalid_request_error"), text_reply(ANSWER))
    async with fake.serve() as url, Bridge(settings(served, url)) as bridge:
        events = await collect(bridge.ask(user="alice", question="who leads?"))

    assert len(fake.requests) == 1
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert (error.error_type, error.retryable) == ("invalid_request_error", False)
    assert final_of(events).message.outcome == "errored"
