"""A scripted fake of the Anthropic Messages API, for testing code that calls Claude without a key or network.

`FakeAnthropic` speaks the real wire format (JSON and SSE streaming, tool use, thinking, API errors with
retry headers, prompt-cache usage), so the `anthropic` SDK works against it unchanged: point
`AsyncAnthropic(base_url=...)` at it instead of patching anything. Every request is recorded for assertions.

```python
import asyncio

from anthropic import AsyncAnthropic

from omni_bridge.testing import FakeAnthropic, ToolCall, error_reply, text_reply, tool_use_reply


async def main() -> None:
    fake = FakeAnthropic(
        error_reply(529, retry_after_ms=10),  # the SDK retries this one
        tool_use_reply([ToolCall("get_weather", {"city": "Paris"})], text="Let me check."),
        text_reply("It is sunny in Paris."),
    )
    async with fake.serve() as url, AsyncAnthropic(api_key="test-key", base_url=url, max_retries=2) as client:
        messages = [{"role": "user", "content": "Weather in Paris?"}]
        first = await client.messages.create(model="claude-sonnet-5-5", max_tokens=256, messages=messages)
        call = next(block for block in first.content if block.type == "tool_use")
        messages.append(first.to_param())
        result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
        messages.append({"role": "user", "content": [result]})
        async with client.messages.stream(model="claude-sonnet-5-5", max_tokens=256, messages=messages) as stream:
            final = await stream.get_final_message()
    print(final.content[0].text)                         # It is sunny in Paris.
    print([r.retry_count for r in fake.requests])        # [0, 1, 0]
    print(fake.requests[-1].tool_result_texts)           # ['sunny']


asyncio.run(main())
```

Scripting: replies are used in order, one per request; after that `responder(request)` decides (a function of
the `CapturedRequest`, like pydantic-ai's `FunctionModel`); `tool_then_answer(...)` and `call_every_tool()`
are ready-made responders for agent-loop tests; `offered_tools_in_order()` is a model that calls only the
tools it is offered, in the order of Omni's documented flow (round trips then depend only on them).
`Reply(delay_seconds=...)` slows a stream down (for cancellation tests) and `stream_error_reply()` fails one
mid-stream. A `Reply` is built of `ReplyText`, `ReplyThinking` and `ToolCall` blocks, and the token counts the
fake reports with it are a `ReplyUsage`: the API's wire blocks, distinct from the bridge's own content parts
and `Usage` (`omni_bridge.TextPart`, `omni_bridge.Usage`).

Stream faults break streamed answers after their headers, the ways a network and the API do: a drop, an
end without `message_stop`, a malformed `data:` line, a stall (for some seconds, or until the client gives
up); once, N times or always:

```python
fake = FakeAnthropic(
    responder=tool_then_answer(ToolCall("get_weather", {"city": "Paris"})),
    faults=[StreamFault("disconnect", after_events=4)],  # after the first fragment of the tool call's input
)
fake.add_fault(StreamFault("stall", after_events=4, stall_seconds=None, times=2))
fake.add_fault(StreamFault("truncate", after_events=6, times=None))  # every stream after those
```

Usage is deterministic (about a quarter of the JSON length) and prompt caching is simulated from the
request's `cache_control` markers: the first request with a marked prefix reports
`cache_creation_input_tokens`, later ones with the same prefix `cache_read_input_tokens`.

From synchronous code, such as a session-scoped pytest fixture, use `with fake.run_in_thread() as url:`.
"""

from omni_bridge.testing._capture import CapturedRequest, Outcome, ReplyUsage
from omni_bridge.testing._fake_anthropic import MESSAGES_PATH, FakeAnthropic, Responder
from omni_bridge.testing._faults import FaultKind, StreamFault
from omni_bridge.testing._models import (
    CAREFUL_ORDER,
    call_every_tool,
    example_input,
    offered_tools_in_order,
    tool_then_answer,
)
from omni_bridge.testing._replies import (
    ErrorReply,
    Reply,
    ReplyPart,
    ReplyText,
    ReplyThinking,
    StopReason,
    ToolCall,
    error_reply,
    stream_error_reply,
    text_reply,
    tool_use_reply,
)
from omni_bridge.testing._tokens import PromptCache

__all__ = [
    "CAREFUL_ORDER",
    "MESSAGES_PATH",
    "CapturedRequest",
    "ErrorReply",
    "FakeAnthropic",
    "FaultKind",
    "Outcome",
    "PromptCache",
    "Reply",
    "ReplyPart",
    "ReplyText",
    "ReplyThinking",
    "ReplyUsage",
    "Responder",
    "StopReason",
    "StreamFault",
    "ToolCall",
    "call_every_tool",
    "error_reply",
    "example_input",
    "offered_tools_in_order",
    "stream_error_reply",
    "text_reply",
    "tool_then_answer",
    "tool_use_reply",
]
