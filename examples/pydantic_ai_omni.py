"""A pydantic-ai agent answering with Omni's data as one end user, on that user's pooled MCP session.

    pip install 'omni-bridge[pydantic-ai]'
    python examples/pydantic_ai_omni.py --user alice --question "revenue by region"

With no `OMNI_BASE_URL` it runs against the in-process sandbox, where row-level security shows each user only
their own region (alice: West, bob: East). The model is pydantic-ai's own `FunctionModel` (no API key, no
network): it calls `getData` with the question, then answers with what Omni returned. Pass
`--model anthropic:claude-sonnet-5-5` (with the provider's key set) to let a real model drive the same tools.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.pydantic_ai import OmniToolset

INSTRUCTIONS = "Answer questions about the user's business data with Omni's tools. Quote the numbers."

# One agent for every user: the end user's tools are given per run.
agent = Agent(instructions=INSTRUCTIONS)


def scripted_model(question: str) -> FunctionModel:
    """A model that asks Omni the question once (`getData`), then answers with Omni's result."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [
            part
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("getData", {"prompt": question}, tool_call_id="call_1")])
        return ModelResponse(parts=[TextPart(f"Here is what Omni found:\n{returns[-1].model_response_str()}")])

    return FunctionModel(respond)


async def ask(omni: OmniConnection, user: str, question: str, *, model: Model | str | None = None) -> str:
    """Answer `question` as the end user `user` (external id): Omni's tools for that user, one agent run."""
    toolset = OmniToolset(await omni.toolset(user))
    result = await agent.run(question, model=model or scripted_model(question), toolsets=[toolset])
    return result.output


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="alice", help="the end user's external id (default alice)")
    parser.add_argument("--question", default="revenue by region")
    parser.add_argument("--model", help="a real model, e.g. anthropic:claude-sonnet-5-5; default: the scripted one")
    parser.add_argument("--sandbox", action="store_true", help="use the in-process sandbox even with OMNI_BASE_URL")
    args = parser.parse_args(argv)
    async with OmniConnection.from_settings(sandbox=args.sandbox) as omni:
        print(await ask(omni, args.user, args.question, model=args.model))
        if omni.sandbox is not None:
            print(f"MCP sessions opened at the sandbox: {sum(omni.sandbox.stats.sessions_opened.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
