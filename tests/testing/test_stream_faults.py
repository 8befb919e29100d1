"""`FakeAnthropic`'s stream faults, as the real `anthropic` SDK meets them over loopback.

Each fault breaks a streamed answer after its headers at a chosen event; what the SDK then raises (or,
for an early end, silently accepts) is what code under test has to handle.
"""

from __future__ import annotations

import json

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam

from omni_bridge.testing import FakeAnthropic, ReplyUsage, StreamFault, text_reply
from omni_bridge.testing._faults import faulty_sse
from omni_bridge.testing._wire import content_blocks, stream_frames
from tests.testing.test_fake_anthropic import MODEL, QUESTION, finished, sdk

ANSWER = "West leads with 1.2M."


async def stream_once(client: AsyncAnthropic, messages: list[MessageParam] = QUESTION) -> tuple[list[str], str]:
    """The event types seen and the final text of one streamed request."""
    seen: list[str] = []
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:
        async for event in stream:
            seen.append(event.type)
        final = await stream.get_final_message()
    return seen, "".join(block.text for block in final.content if block.type == "text")


def answer_fake(*faults: StreamFault) -> FakeAnthropic:
    return FakeAnthropic(responder=lambda request: text_reply(ANSWER), faults=faults)


async def test_a_disconnect_drops_the_connection_mid_body_after_the_events_before_it() -> None:
    fake = answer_fake(StreamFault("disconnect", after_events=4))
    async with sdk(fake, max_retries=0) as client:
        seen: list[str] = []
        with pytest.raises(httpx2.RemoteProtocolError):
            async with client.messages.stream(model=MODEL, max_tokens=64, messages=QUESTION) as stream:
                async for event in stream:
                    seen.append(event.type)
        assert await finished(fake.requests[0]) == "faulted"
    assert seen == ["message_start", "content_block_start", "content_block_delta", "text"]  # `ping` is skipped
    assert fake.requests[0].fault == StreamFault("disconnect", after_events=4)


async def test_a_truncated_stream_ends_cleanly_without_message_stop_and_the_sdk_accepts_it() -> None:
    fake = answer_fake(StreamFault("truncate", after_events=4))
    async with sdk(fake) as client:
        seen, text = await stream_once(client)
        assert await finished(fake.requests[0]) == "faulted"
    assert "message_stop" not in seen and text == ANSWER[:16]  # a fragment, and nothing says so
    assert len(fake.requests) == 1


async def test_a_malformed_event_carries_cut_off_json_and_the_sdk_raises_a_json_error() -> None:
    fake = answer_fake(StreamFault("malformed", after_events=2))
    async with sdk(fake) as client:
        with pytest.raises(json.JSONDecodeError):
            await stream_once(client)
        assert await finished(fake.requests[0]) == "faulted"


async def test_a_stall_until_the_client_gives_up_meets_its_read_timeout() -> None:
    fake = answer_fake(StreamFault("stall", after_events=3))
    async with fake.serve() as url, AsyncAnthropic(api_key="k", base_url=url, max_retries=0, timeout=0.5) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await stream_once(client)
        assert await finished(fake.requests[0]) == "disconnected"  # a stall that passes breaks nothing itself
    assert fake.requests[0].fault is not None and fake.requests[0].fault.kind == "stall"


async def test_a_stall_of_some_seconds_then_carries_on_to_the_end() -> None:
    fake = answer_fake(StreamFault("stall", after_events=3, stall_seconds=0.05))
    async with sdk(fake) as client:
        seen, text = await stream_once(client)
    assert seen[-1] == "message_stop" and text == ANSWER


async def test_faults_strike_once_n_times_or_always_in_order_and_only_streams() -> None:
    fake = answer_fake(StreamFault("truncate", after_events=0, times=2))
    fake.add_fault(StreamFault("malformed", after_events=0, times=None))
    async with sdk(fake) as client:
        # A JSON request takes no fault.
        created = await client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
        assert created.content[0].type == "text"
        for _ in range(2):
            with pytest.raises(AssertionError):  # the SDK's own assert: no `message_start` arrived
                await stream_once(client)
        assert [fault.kind for fault in fake.pending_faults] == ["malformed"]
        for _ in range(2):
            with pytest.raises(json.JSONDecodeError):
                await stream_once(client)
    assert [r.fault.kind if r.fault else None for r in fake.requests] == [
        None,
        "truncate",
        "truncate",
        "malformed",
        "malformed",
    ]
    assert [fault.kind for fault in fake.pending_faults] == ["malformed"]  # `times=None` stays


async def test_a_fault_past_the_last_event_never_strikes() -> None:
    fake = answer_fake(StreamFault("disconnect", after_events=1000))
    async with sdk(fake) as client:
        seen, text = await stream_once(client)
    assert seen[-1] == "message_stop" and text == ANSWER and fake.requests[0].fault is None


async def test_a_malformed_frame_keeps_its_event_line_and_cuts_its_data_in_half() -> None:
    reply = text_reply(ANSWER)
    frames = stream_frames(
        reply, content_blocks(reply, lambda: "toolu_1"), message_id="msg_1", model=MODEL, usage=ReplyUsage(1, 1)
    )
    struck: list[bool] = []
    chunks = [
        chunk
        async for chunk in faulty_sse(
            frames, 0.0, StreamFault("malformed", after_events=3), lambda: struck.append(True)
        )
    ]
    event, data = chunks[3].decode().split("\n")[:2]
    assert event == "event: content_block_delta" and data.startswith('data: {"type":"content_block_delta"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(data.removeprefix("data: "))
    assert struck == [True] and chunks[-1].startswith(b"event: message_stop")  # then it carries on


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "disconnect", "after_events": -1},
        {"kind": "stall", "stall_seconds": 3600},
        {"kind": "truncate", "times": 0},
    ],
)
def test_a_fault_out_of_range_is_refused(fault: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StreamFault(**fault)  # type: ignore[arg-type]


async def test_an_sdk_with_retries_does_not_retry_a_stream_broken_after_its_headers() -> None:
    # Why the fake needs these faults: the SDK's retries end once the headers are in.
    fake = answer_fake(StreamFault("disconnect", after_events=0))
    async with sdk(fake, max_retries=2) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await stream_once(client)
    assert len(fake.requests) == 1 and not issubclass(httpx2.RemoteProtocolError, anthropic.APIError)
