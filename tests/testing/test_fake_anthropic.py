"""The fake Messages API, driven by the real `anthropic` SDK over loopback: what the SDK parses is the spec."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import Message, MessageParam, TextBlock, ThinkingBlock, ToolUseBlock

import omni_bridge.testing as testing
from omni_bridge.testing import (
    MESSAGES_PATH,
    CapturedRequest,
    FakeAnthropic,
    Reply,
    ToolCall,
    call_every_tool,
    error_reply,
    stream_error_reply,
    text_reply,
    tool_then_answer,
    tool_use_reply,
)

MODEL = "claude-sonnet-5-5"
QUESTION: list[MessageParam] = [{"role": "user", "content": "What was revenue last month?"}]
Block = TypeVar("Block")


@contextlib.asynccontextmanager
async def sdk(fake: FakeAnthropic, *, max_retries: int = 2, api_key: str = "test-key") -> AsyncIterator[AsyncAnthropic]:
    async with fake.serve() as url, AsyncAnthropic(api_key=api_key, base_url=url, max_retries=max_retries) as client:
        yield client


def only(content: Sequence[object], kind: type[Block]) -> list[Block]:
    return [block for block in content if isinstance(block, kind)]


def tokens(message: Message) -> tuple[int, int, int]:
    """(uncached input, cache creation, cache read) of a message's usage; the fake always sends all three."""
    usage = message.usage
    assert usage.cache_creation_input_tokens is not None and usage.cache_read_input_tokens is not None
    return usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens


async def finished(captured: CapturedRequest) -> str:
    async with asyncio.timeout(5):
        return await captured.wait_finished()


# --- JSON answers ---------------------------------------------------------------------------------------


async def test_create_returns_the_scripted_text_and_echoes_the_model() -> None:
    fake = FakeAnthropic(text_reply("Revenue was 42."))
    async with sdk(fake) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert [block.text for block in only(message.content, TextBlock)] == ["Revenue was 42."]
    assert message.model == MODEL and message.stop_reason == "end_turn" and message.id.startswith("msg_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert len(fake.requests) == 1 and fake.requests[0].messages == QUESTION and not fake.requests[0].stream


async def test_create_returns_several_tool_calls_of_one_turn_after_the_text() -> None:
    calls = [ToolCall("pickTopic", {"topic": "orders"}), ToolCall("getData", {"prompt": "revenue"}, id="toolu_mine")]
    fake = FakeAnthropic(tool_use_reply(calls, text="Let me look."))
    async with sdk(fake) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    uses = only(message.content, ToolUseBlock)
    assert [(use.name, use.input) for use in uses] == [(call.name, call.input) for call in calls]
    assert uses[0].id.startswith("toolu_") and uses[1].id == "toolu_mine"
    assert message.stop_reason == "tool_use"


async def test_unknown_body_keys_are_accepted_and_a_missing_required_field_is_refused() -> None:
    fake = FakeAnthropic(text_reply("fine"))
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "messages": QUESTION, "thread": {"type": "create"}}
    async with fake.serve() as url, httpx2.AsyncClient(base_url=url, headers={"x-api-key": "k"}) as http:
        accepted = await http.post(MESSAGES_PATH, json={**body, "some_future_option": True})
        refused = await http.post(MESSAGES_PATH, json={"model": MODEL, "messages": QUESTION})
    assert accepted.status_code == 200 and accepted.json()["content"] == [{"type": "text", "text": "fine"}]
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in refused.json()["error"]["message"]


async def test_a_transcript_with_an_unanswered_or_unknown_tool_call_is_refused_like_the_api_does() -> None:
    fake = FakeAnthropic(text_reply("never sent"))
    asked: MessageParam = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "getData", "input": {}}],
    }
    unanswered: list[MessageParam] = [*QUESTION, asked, {"role": "user", "content": "Well?"}]
    results: list[Any] = [
        {"type": "tool_result", "tool_use_id": use_id, "content": "x"} for use_id in ("toolu_1", "toolu_other")
    ]
    unknown: list[MessageParam] = [*QUESTION, asked, {"role": "user", "content": results}]
    async with sdk(fake) as client:
        for messages, culprit in ((unanswered, "toolu_1"), (unknown, "toolu_other")):
            with pytest.raises(anthropic.BadRequestError, match=culprit):
                await client.messages.create(model=MODEL, max_tokens=64, messages=messages)
    assert fake.pending_replies == 1


# --- streaming ------------------------------------------------------------------------------------------


async def test_stream_delivers_thinking_text_and_tool_use_with_the_input_parsed() -> None:
    tool_input = {"query": {"fields": ["orders.month", "orders.revenue"], "limit": 10}}
    fake = FakeAnthropic(
        tool_use_reply([ToolCall("getData", tool_input)], text="Let me query that.", thinking="Revenue by month.")
    )
    async with sdk(fake) as client:
        async with client.messages.stream(model=MODEL, max_tokens=256, messages=QUESTION) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    thinking, text, use = final.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking == "Revenue by month." and thinking.signature
    assert isinstance(text, TextBlock) and text.text == "Let me query that."
    assert isinstance(use, ToolUseBlock) and use.name == "getData" and use.input == tool_input
    assert kinds.count("input_json") >= 2 and kinds.count("text") >= 2 and "signature" in kinds
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 1
    assert fake.requests[0].stream


async def test_an_error_frame_mid_stream_raises_after_the_partial_text() -> None:
    fake = FakeAnthropic(stream_error_reply("overloaded_error", text="Revenue was"))
    received: list[str] = []
    async with sdk(fake) as client:
        with pytest.raises(anthropic.APIStatusError) as raised:
            async with client.messages.stream(model=MODEL, max_tokens=64, messages=QUESTION) as stream:
                async for piece in stream.text_stream:
                    received.append(piece)
        outcome = await finished(fake.requests[0])
    body = raised.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "overloaded_error"
    assert "".join(received) == "Revenue was"
    assert len(fake.requests) == 1 and outcome == "error"


async def test_a_mid_stream_error_scripted_for_a_json_request_answers_with_its_status() -> None:
    fake = FakeAnthropic(stream_error_reply("overloaded_error"))
    async with sdk(fake, max_retries=0) as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert fake.requests[0].status == 529


# --- errors and retries ---------------------------------------------------------------------------------


async def test_a_529_is_retried_by_the_sdk_and_the_capture_counts_the_retries() -> None:
    fake = FakeAnthropic(error_reply(529, retry_after_ms=5), text_reply("ok"))
    async with sdk(fake, max_retries=2) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert [block.text for block in only(message.content, TextBlock)] == ["ok"]
    assert [(r.retry_count, r.status) for r in fake.requests] == [(0, 529), (1, 200)]


async def test_a_429_raises_rate_limit_error_with_the_api_error_body_when_retries_are_off() -> None:
    fake = FakeAnthropic(error_reply(429, retry_after_ms=5))
    async with sdk(fake, max_retries=0) as client:
        with pytest.raises(anthropic.RateLimitError) as raised:
            await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    error = raised.value
    assert error.status_code == 429 and error.response.headers["retry-after-ms"] == "5"
    assert error.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"},
        "request_id": error.request_id,
    }
    assert len(fake.requests) == 1


async def test_a_used_up_script_answers_a_400_that_the_sdk_does_not_retry() -> None:
    fake = FakeAnthropic(text_reply("only one"))
    async with sdk(fake) as client:
        await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
        with pytest.raises(anthropic.BadRequestError, match="script is used up"):
            await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert len(fake.requests) == 2 and fake.pending_replies == 0


async def test_a_failing_responder_surfaces_as_an_unretried_500_naming_the_exception() -> None:
    def responder(request: CapturedRequest) -> Reply:
        raise LookupError("no plan for this")

    fake = FakeAnthropic(responder=responder)
    async with sdk(fake) as client:
        with pytest.raises(anthropic.InternalServerError, match="no plan for this"):
            await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert len(fake.requests) == 1


# --- auth and capture -----------------------------------------------------------------------------------


async def test_a_request_without_a_key_gets_a_401_and_uses_no_reply() -> None:
    fake = FakeAnthropic(text_reply("for the keyed request"))
    body = {"model": MODEL, "max_tokens": 8, "messages": QUESTION}
    async with fake.serve() as url, httpx2.AsyncClient(base_url=url) as http:
        anonymous = await http.post(MESSAGES_PATH, json=body)
        keyed = await http.post(MESSAGES_PATH, json=body, headers={"x-api-key": "k"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    assert anonymous.json()["request_id"] == anonymous.headers["request-id"]
    assert keyed.status_code == 200 and keyed.json()["content"][0]["text"] == "for the keyed request"
    assert [r.status for r in fake.requests] == [401, 200]


async def test_a_key_outside_api_keys_raises_authentication_error() -> None:
    fake = FakeAnthropic(text_reply("never sent"), api_keys={"the-right-key"})
    async with sdk(fake, api_key="test-key") as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert fake.pending_replies == 1


async def test_the_capture_masks_the_key_and_keeps_the_other_headers() -> None:
    fake = FakeAnthropic(text_reply("a"), text_reply("b"))
    async with sdk(fake, api_key="sk-very-secret") as client:
        await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    async with fake.serve() as url, httpx2.AsyncClient(base_url=url) as http:
        body = {"model": MODEL, "max_tokens": 8, "messages": QUESTION}
        await http.post(MESSAGES_PATH, json=body, headers={"x-api-key": "sk-other-secret"})
    bearer, x_api_key = fake.requests
    assert bearer.headers["authorization"] == "[secure]" and x_api_key.headers["x-api-key"] == "[secure]"
    assert bearer.headers["anthropic-version"] and bearer.headers["x-stainless-retry-count"] == "0"
    assert "secret" not in repr(bearer.headers) + repr(x_api_key.headers) + repr(fake.requests)


# --- prompt caching -------------------------------------------------------------------------------------

TOOLS: list[Any] = [
    {"name": "getData", "description": "Query Omni.", "input_schema": {"type": "object", "properties": {}}},
    {
        "name": "pickTopic",
        "description": "Choose a topic.",
        "input_schema": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
        "cache_control": {"type": "ephemeral"},
    },
]
SYSTEM: list[Any] = [
    {"type": "text", "text": "You answer questions about company data. " * 30, "cache_control": {"type": "ephemeral"}}
]


async def test_cache_markers_report_creation_then_read_for_a_repeated_prefix() -> None:
    fake = FakeAnthropic(text_reply("1"), text_reply("2"), text_reply("3"))
    other: list[MessageParam] = [{"role": "user", "content": "And the month before?"}]
    unmarked: list[Any] = [{key: value for key, value in block.items() if key != "cache_control"} for block in SYSTEM]
    async with sdk(fake) as client:
        first = await client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=QUESTION)
        second = await client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=other)
        plain = await client.messages.create(model=MODEL, max_tokens=64, system=unmarked, tools=TOOLS, messages=other)
    (_, first_created, first_read), (second_input, second_created, second_read) = tokens(first), tokens(second)
    assert first_created > 0 and first_read == 0
    assert second_read == first_created and second_created == 0
    # Without the system marker only the tools prefix is read; the system block becomes uncached input.
    plain_input, plain_created, plain_read = tokens(plain)
    assert 0 < plain_read < first_created and plain_created == 0
    assert plain_input + plain_read == second_input + second_read
    assert fake.requests[0].cache_breakpoints == ["tools[1]", "system[0]"]


async def test_a_growing_streamed_conversation_reads_the_cached_turns_and_writes_only_the_new_ones() -> None:
    fake = FakeAnthropic(text_reply("January: 42."), text_reply("February: 40."))
    marker: Any = {"type": "ephemeral"}
    async with sdk(fake) as client:
        history: list[MessageParam] = list(QUESTION)
        async with client.messages.stream(
            model=MODEL, max_tokens=64, system=SYSTEM, messages=history, cache_control=marker
        ) as stream:
            first = await stream.get_final_message()
        history += [first.to_param(), {"role": "user", "content": [{"type": "text", "text": "And February?"}]}]
        async with client.messages.stream(
            model=MODEL, max_tokens=64, system=SYSTEM, messages=history, cache_control=marker
        ) as stream:
            second = await stream.get_final_message()
    (first_input, first_created, first_read), (_, second_created, second_read) = tokens(first), tokens(second)
    assert first_input == 0 and first_read == 0
    assert second_read == first_created and 0 < second_created < first_created
    assert fake.requests[1].cache_breakpoints == ["system[0]", "request"]


async def test_prefixes_below_min_cacheable_tokens_are_not_cached() -> None:
    fake = FakeAnthropic(text_reply("1"), text_reply("2"), min_cacheable_tokens=100_000)
    async with sdk(fake) as client:
        for _ in range(2):
            message = await client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=QUESTION)
            assert tokens(message)[1:] == (0, 0)
    assert len(fake.cache) == 0


# --- responders -----------------------------------------------------------------------------------------


async def test_the_script_comes_first_then_the_responder_decides_from_the_request() -> None:
    async def echo(request: CapturedRequest) -> Reply:
        last = request.last_message or {}
        return text_reply(f"You said: {last.get('content')}")

    fake = FakeAnthropic(text_reply("scripted"), responder=echo)
    async with sdk(fake) as client:
        texts = []
        for question in ("first", "second"):
            message = await client.messages.create(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": question}]
            )
            texts += [block.text for block in only(message.content, TextBlock)]
    assert texts == ["scripted", "You said: second"]


async def run_agent(client: AsyncAnthropic, tools: dict[str, str], question: str) -> tuple[str, int]:
    """A minimal agent loop: answer every tool call with the tool's canned text until the model stops."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    definitions: list[Any] = [{"name": name, "input_schema": schema} for name in tools]
    messages: list[MessageParam] = [{"role": "user", "content": question}]
    for turn in range(1, 6):
        message = await client.messages.create(model=MODEL, max_tokens=256, tools=definitions, messages=messages)
        if message.stop_reason != "tool_use":
            return "".join(block.text for block in only(message.content, TextBlock)), turn
        messages.append(message.to_param())
        results: list[Any] = [
            {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": tools[use.name]}]}
            for use in only(message.content, ToolUseBlock)
        ]
        messages.append({"role": "user", "content": results})
    raise AssertionError("the agent did not finish")


async def test_tool_then_answer_runs_the_plan_and_quotes_the_tool_results() -> None:
    plan = tool_then_answer(
        [ToolCall("weather", {"city": "Paris"}), ToolCall("time", {"city": "Paris"})],
        ToolCall("weather", {"city": "Lyon"}),
        answer="Summary: {results}",
    )
    fake = FakeAnthropic(responder=plan)
    async with sdk(fake) as client:
        answer, turns = await run_agent(client, {"weather": "sunny", "time": "noon"}, "Paris and Lyon?")
    assert (answer, turns) == ("Summary: sunny", 3)
    assert [len(r.tool_results) for r in fake.requests] == [0, 2, 1]
    assert fake.requests[1].tool_result_texts == ["sunny", "noon"]


async def test_call_every_tool_calls_each_tool_with_schema_valid_input_then_answers() -> None:
    fake = FakeAnthropic(responder=call_every_tool())
    async with sdk(fake) as client:
        answer, turns = await run_agent(client, {"weather": "sunny", "time": "noon"}, "Anything?")
    assert answer == "Here is what the tools returned:\nsunny\nnoon" and turns == 2
    first_turn = fake.requests[1].messages[1]["content"]
    assert [(block["name"], block["input"]) for block in first_turn] == [
        ("weather", {"city": "a"}),
        ("time", {"city": "a"}),
    ]


# --- slow streams and cancellation ----------------------------------------------------------------------


async def test_a_slow_stream_stops_as_soon_as_the_client_goes_away() -> None:
    fake = FakeAnthropic(text_reply("a long and slow answer " * 4, delay_seconds=30))
    async with sdk(fake) as client:
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=QUESTION) as stream:
            assert (await anext(aiter(stream))).type == "message_start"
        assert await finished(fake.requests[0]) == "disconnected"


async def test_stopping_the_fake_aborts_a_stream_still_in_flight() -> None:
    fake = FakeAnthropic(text_reply("a long and slow answer " * 4, delay_seconds=30))
    with fake.run_in_thread() as url:
        client = AsyncAnthropic(api_key="test-key", base_url=url, max_retries=0)
        stream = await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION, stream=True)
        assert (await anext(aiter(stream))).type == "message_start"
    try:
        assert fake.requests[0].outcome == "aborted"
    finally:
        await stream.close()
        await client.close()


# --- the public face ------------------------------------------------------------------------------------


def test_all_lists_exactly_the_public_names_in_order() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # ruff RUF022: CONSTANTS, then Classes, then functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    public = {name for name in vars(testing) if not name.startswith("_")}
    assert testing.__all__ == sorted(testing.__all__, key=isort_style)
    assert set(testing.__all__) == public
