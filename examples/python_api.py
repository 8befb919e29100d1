"""The Python API in one page: answer data questions for your own end users, streaming the answer.

    python examples/python_api.py

Nothing to configure: with no `OMNI_BASE_URL` the bridge starts the embedded Omni sandbox in-process, and with
no `ANTHROPIC_API_KEY` the `omni` engine (Omni's own agent) answers. Alice asks a question and a follow-up in
the same conversation; then bob asks the first question again. Row-level security gives each their own
numbers: alice sees only the West, bob only the East. The identity is the bridge's business, never the model's:
your code says who is asking, and every call to Omni carries that user.

With `ANTHROPIC_API_KEY` set (environment or `.env`), the `claude` engine answers instead, calling Omni's tools
itself; see the note at the end of `main`.
"""

from __future__ import annotations

import asyncio

from omni_bridge.agent import (
    Bridge,
    ChartPart,
    ChartReady,
    ErrorEvent,
    Event,
    FinalMessage,
    Progress,
    StructuredActionPart,
    SuggestedActionsPart,
    TextDelta,
    TextPart,
    ToolCallFinished,
    ToolCallStarted,
)
from omni_bridge.tools import DataChart


def show(event: Event) -> None:
    """Print one event of the stream as a chat front end might show it."""
    match event:
        case TextDelta(text=text):
            print(text, end="", flush=True)
        case Progress(message=message):
            print(f"  … {message}")
        case ToolCallStarted(tool=tool, arguments=arguments):
            print(f"  [tool] {tool}({arguments})")
        case ToolCallFinished(tool=tool, summary=summary, is_error=is_error):
            print(f"  [tool] {tool} {'failed' if is_error else 'returned'}: {summary}")
        case ChartReady(chart=chart):
            print(f"  [chart] {describe(chart)}")
        case ErrorEvent(message=message):
            print(f"  [error] {message}")
        case FinalMessage(message=message):
            print(f"\n  [final message {message.id}, {message.outcome}]")
            for part in message.parts:
                match part:
                    case TextPart(text=text):
                        print(f"    text: {len(text)} characters")
                    case ChartPart(chart=chart):
                        print(f"    chart: {describe(chart)}")
                    case SuggestedActionsPart(actions=actions):
                        print(f"    follow-ups: {' | '.join(action.label for action in actions)}")
                    case StructuredActionPart(action=action, url=url):
                        print(f"    {action}: {url}")
                    case _:
                        print(f"    {part.type}")


def describe(chart: DataChart) -> str:
    points = [f"{p.x}={'-' if p.y is None else format(p.y, ',.2f')}" for s in chart.series for p in s.points[:5]]
    return f"{chart.title or 'chart'}: {', '.join(points)}"


async def main() -> None:
    # Reads OMNI_*, ANTHROPIC_* and BRIDGE_* from the environment or .env; none are needed here.
    async with Bridge.from_settings() as bridge:
        print(f"{bridge}: engines {', '.join(bridge.engine_names())}")

        # 1. Alice asks; the events stream as the answer is made. `user` is your own key for the user.
        print("\n=== alice: revenue by region ===")
        conversation_id = None
        async for event in bridge.ask(user="alice", question="revenue by region"):
            conversation_id = event.conversation_id  # a new conversation: every event carries its id
            show(event)

        # 2. A follow-up in the same conversation (it stays bound to alice: bob could not continue it).
        print("\n=== alice, same conversation: and by category? ===")
        async for event in bridge.ask(user="alice", question="and by category?", conversation_id=conversation_id):
            show(event)

        # 3. Bob asks alice's first question: the same bridge, his own identity, his own numbers.
        print("\n=== bob: revenue by region ===")
        message = await bridge.answer(user="bob", question="revenue by region")  # no streaming: the final message
        print(message.text)

        # With Claude: set ANTHROPIC_API_KEY (BRIDGE_ENGINE=auto then picks `claude`), or pick it per conversation.
        # The same events stream, plus ToolCallStarted/ToolCallFinished for each Omni tool Claude calls and a
        # UsageReport after each request; `message.usage` holds the tokens of the whole answer.
        #
        #     from omni_bridge.config import load_settings
        #
        #     settings = load_settings(anthropic_api_key="sk-ant-...")  # or leave it to the environment / .env
        #     async with Bridge(settings) as bridge:
        #         async for event in bridge.ask(user="alice", question="revenue by region", engine="claude"):
        #             show(event)
        #
        # Pin OMNI_MODEL_ID and OMNI_TOPIC_NAME when your users query one topic: Claude then skips pickModel and
        # pickTopic, which halves the round trips of a simple question (bench/agent.py measures it). Unpinned,
        # the bridge pins a user's only model and picks the topic itself, so a simple question takes 3 at most.


if __name__ == "__main__":
    asyncio.run(main())
