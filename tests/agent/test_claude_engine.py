"""The `claude` engine through the `Bridge`: the sandbox for Omni, the scripted fake for the Messages API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from omni_bridge.agent import (
    Bridge,
    ErrorEvent,
    Event,
    FinalMessage,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReport,
    repair_transcript,
)
from omni_bridge.exceptions import IdentityError
from omni_bridge.stores import SqliteStore
from omni_bridge.testing import FakeAnthropic, ToolCall, error_reply, text_reply, tool_then_answer, tool_use_reply
from tests.agent.claude_helpers import settings_for
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until

REVENUE = ToolCall("getData", {"prompt": "revenue by region"})


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    yield
    served.sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)


def strategy(served: Served, auth: str) -> dict[str, Any]:
    """The settings of one auth strategy: the org key plus X-MCP-User-ID, or per-user embed MCP tokens."""
    if auth == "org_key":
        return {}
    return {"omni_auth": auth, "omni_embed_secret": served.sandbox.config.embed_secret}


AUTH = pytest.mark.parametrize("auth", ["org_key", "embed_token"])


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def final_of(events: list[Event]) -> FinalMessage:
    assert isinstance(events[-1], FinalMessage), events[-1]
    return events[-1]


@AUTH
async def test_a_multi_turn_conversation_answers_with_each_users_own_numbers(served: Served, auth: str) -> None:
    fake = FakeAnthropic(
        responder=tool_then_answer(REVENUE, answer="Revenue: {results}\nFollow-ups: by month | by state")
    )
    async with fake.serve() as url, Bridge(settings_for(served, url, **strategy(served, auth))) as bridge:
        first = await collect(bridge.ask(user="alice", question="What is our revenue by region?"))
        conversation_id = final_of(first).conversation_id
        second = await collect(bridge.ask(user="alice", question="Again, please.", conversation_id=conversation_id))
        bobs = await collect(bridge.ask(user="bob", question="What is our revenue by region?"))

        alice_answer, bob_answer = final_of(second).message, final_of(bobs).message
        assert "West" in alice_answer.text and "East" not in alice_answer.text
        assert "East" in bob_answer.text and "West" not in bob_answer.text
        assert "Follow-ups" not in alice_answer.text
        assert "Follow-ups" not in "".join(e.text for e in second if isinstance(e, TextDelta))
        assert next(p.type for p in alice_answer.parts) == "text"
        assert {"suggested_actions", "structured_action", "chart"} <= {p.type for p in alice_answer.parts}

        stored = await bridge.store.get(conversation_id)
        assert stored is not None and len(stored.messages) == 8  # two questions, each: tool turn + answer turn
        assert repair_transcript(stored.messages) == stored.messages
    # The second question's first request carried the whole first exchange.
    second_requests = [r for r in fake.requests if "Again, please." in json.dumps(r.messages)]
    assert "What is our revenue by region?" in json.dumps(second_requests[0].messages)


async def test_the_tools_of_one_turn_run_at_the_same_time(served: Served) -> None:
    both = [ToolCall("getData", {"prompt": "revenue by region"}), ToolCall("getData", {"prompt": "orders by region"})]
    fake = FakeAnthropic(responder=tool_then_answer(both))
    served.sandbox.set_faults(slow_tool_seconds=0.3, slow_tool_name="getData")
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        events = await collect(bridge.ask(user="carol", question="revenue and orders by region"))

    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert len(finished) == 2 and not any(e.is_error for e in finished)
    assert served.sandbox.stats.max_in_flight >= 2  # both calls were inside the sandbox at once
    # All results of the turn went back in one user message.
    assert len(fake.requests[-1].tool_results) == 2


async def test_cancelling_during_a_tool_call_cancels_it_at_omni_and_leaves_a_valid_transcript(served: Served) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE))
    served.sandbox.set_faults(slow_tool_seconds=30.0, slow_tool_name="getData")
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        seen: list[Event] = []

        async def consume() -> None:
            async for event in bridge.ask(user="dan", question="revenue by region", conversation_id="conv_cancel"):
                seen.append(event)

        task = asyncio.create_task(consume())
        await wait_until(lambda: served.sandbox.stats.in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: len(served.sandbox.stats.cancelled_tool_calls) == 1)

        stored = await bridge.store.get("conv_cancel")
    assert stored is not None
    assert repair_transcript(stored.messages) == stored.messages
    tool_use = stored.messages[-2]["content"][-1]
    result = stored.messages[-1]["content"][0]
    assert tool_use["type"] == "tool_use" and result["tool_use_id"] == tool_use["id"] and result["is_error"] is True
    assert any(isinstance(e, ToolCallStarted) for e in seen)
    assert served.sandbox.stats.cancelled_tool_calls == [(stored.identity.user_id, "getData")]


async def test_an_overloaded_api_is_retried(served: Served) -> None:
    fake = FakeAnthropic(error_reply(529, retry_after_ms=5), text_reply("Hello from Claude."))
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        message = await bridge.answer(user="alice", question="hi")
    assert message.outcome == "completed" and message.text == "Hello from Claude."
    assert [r.retry_count for r in fake.requests] == [0, 1]


async def test_an_api_that_stays_down_ends_the_run_with_an_error_and_keeps_the_question(served: Served) -> None:
    fake = FakeAnthropic(*[error_reply(529, retry_after_ms=1) for _ in range(3)])
    async with fake.serve() as url, Bridge(settings_for(served, url, anthropic_max_retries=2)) as bridge:
        events = await collect(bridge.ask(user="alice", question="hi", conversation_id="conv_down"))
        stored = await bridge.store.get("conv_down")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors and errors[0].error_type == "overloaded_error" and errors[0].retryable
    assert final_of(events).message.outcome == "errored"
    assert stored is not None and stored.messages[-1]["content"][0]["text"] == "hi"


async def test_max_turns_ends_cleanly_with_a_message(served: Served) -> None:
    fake = FakeAnthropic(responder=lambda request: tool_use_reply(ToolCall("pickModel", {})))
    async with fake.serve() as url, Bridge(settings_for(served, url, bridge_max_turns=2)) as bridge:
        events = await collect(bridge.ask(user="alice", question="loop forever", conversation_id="conv_turns"))
        stored = await bridge.store.get("conv_turns")
    final = final_of(events).message
    assert final.outcome == "errored" and "stopped after 2 steps" in final.text
    assert len(fake.requests) == 2
    assert stored is not None and repair_transcript(stored.messages) == stored.messages


async def test_the_usage_ledger_adds_up_and_requests_carry_cache_markers(served: Served) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE))
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        events = await collect(bridge.ask(user="erin", question="revenue by region", conversation_id="conv_usage"))
        stored = await bridge.store.get("conv_usage")

    reports = [e for e in events if isinstance(e, UsageReport)]
    assert [r.turn.turn for r in reports] == [1, 2]
    summed = reports[0].turn.usage + reports[1].turn.usage
    assert reports[-1].total == summed == final_of(events).message.usage
    assert stored is not None and stored.usage == summed
    wire = [r.usage for r in fake.requests]
    assert summed.input_tokens == sum(u.input_tokens for u in wire if u)
    assert summed.cache_read_input_tokens == sum(u.cache_read_input_tokens for u in wire if u) > 0

    for request in fake.requests:
        assert request.body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert request.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert request.body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in json.dumps(stored.messages)  # markers go on the wire, not into the transcript


async def test_a_transcript_left_half_way_is_repaired_before_the_next_question(served: Served, tmp_path: Path) -> None:
    fake = FakeAnthropic(text_reply("First answer."), text_reply("Done."))
    store = SqliteStore(tmp_path / "conversations.db")
    async with fake.serve() as url, Bridge(settings_for(served, url), store=store) as bridge:
        await bridge.answer(user="alice", question="first", conversation_id="conv_crash")
        crashed = await bridge.store.get("conv_crash")
        assert crashed is not None
        orphan = {"type": "tool_use", "id": "toolu_lost", "name": "getData", "input": {"prompt": "x"}}
        crashed.messages.append({"role": "user", "content": [{"type": "text", "text": "second"}]})
        crashed.messages.append({"role": "assistant", "content": [orphan]})  # the process died here
        await bridge.store.save(crashed)

        await bridge.answer(user="alice", question="third", conversation_id="conv_crash")
    await store.aclose()
    sent = fake.requests[-1].messages
    assert sent[-3]["content"][-1]["id"] == "toolu_lost"
    assert sent[-2]["content"][0]["tool_use_id"] == "toolu_lost" and sent[-2]["content"][0]["is_error"] is True


RESUME_SCRIPT = """
import asyncio, json, sys
from omni_bridge.agent import Bridge
from omni_bridge.stores import SqliteStore
from omni_bridge.config import load_settings
from omni_bridge.exceptions import IdentityError

async def main():
    db, omni, key, fake = sys.argv[1:5]
    settings = load_settings(None, omni_base_url=omni, omni_api_key=key, anthropic_api_key="test-key",
                             anthropic_base_url=fake, bridge_engine="claude")
    async with Bridge(settings, store=SqliteStore(db)) as bridge:
        message = await bridge.answer(user="alice", question="and now?", conversation_id="conv_resume")
        print(message.model_dump_json())

asyncio.run(main())
"""


async def test_a_conversation_resumes_from_sqlite_in_a_new_process(served: Served, tmp_path: Path) -> None:
    db = tmp_path / "conversations.db"
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE, answer="Alice sees: {results}"))
    async with fake.serve() as url:
        async with Bridge(settings_for(served, url), store=SqliteStore(db)) as bridge:
            await bridge.answer(user="alice", question="revenue by region", conversation_id="conv_resume")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RESUME_SCRIPT,
            str(db),
            served.url,
            served.org_key,
            url,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    message = json.loads(out)
    assert message["outcome"] == "completed" and message["conversation_id"] == "conv_resume"
    resumed = fake.requests[-2].messages  # the new process's first request
    assert resumed[0]["content"][0]["text"] == "revenue by region"
    assert resumed[-1]["content"][0]["text"] == "and now?"


@AUTH
async def test_a_conversation_cannot_be_continued_by_another_user(served: Served, auth: str) -> None:
    fake = FakeAnthropic(responder=lambda request: text_reply("ok"))
    async with fake.serve() as url, Bridge(settings_for(served, url, **strategy(served, auth))) as bridge:
        await bridge.answer(user="alice", question="hi", conversation_id="conv_alice")
        with pytest.raises(IdentityError):
            await bridge.answer(user="bob", question="show me alice's numbers", conversation_id="conv_alice")
    assert len(fake.requests) == 1
