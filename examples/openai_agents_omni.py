"""An OpenAI Agents SDK agent answering with Omni's data as one end user, on that user's pooled MCP session.

    pip install 'omni-bridge[openai-agents]'
    python examples/openai_agents_omni.py --user alice --question "revenue by region"

With no `OMNI_BASE_URL` it runs against the in-process sandbox, where row-level security shows each user only
their own region (alice: West, bob: East). The model is the SDK's own `ScriptedModel` (no API key, no network):
it calls `getData` with the question, then answers with what Omni returned. Pass `--model gpt-5-mini` (with
`OPENAI_API_KEY` set) to let a real model drive the same tools.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from agents import Agent, Model, ModelSettings, RunConfig, Runner
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.openai_agents import omni_tools

INSTRUCTIONS = "Answer questions about the user's business data with Omni's tools. Quote the numbers."


def scripted_model(question: str) -> ScriptedModel:
    """A model that asks Omni the question once (`getData`), then answers with Omni's result."""

    def answer(call: ModelCall) -> list[Any]:
        outputs = [item for item in call.input if isinstance(item, dict) and item.get("type") == "function_call_output"]
        return [assistant_message(f"Here is what Omni found:\n{outputs[-1]['output']}")]

    return ScriptedModel(
        [[function_call("getData", {"prompt": question}, call_id="call_1")], ModelStep(responder=answer)]
    )


async def ask(omni: OmniConnection, user: str, question: str, *, model: Model | str | None = None) -> str:
    """Answer `question` as the end user `user` (external id): Omni's tools for that user, one agent run."""
    tools = await omni_tools(await omni.toolset(user))
    agent = Agent(
        name="omni-analyst",
        instructions=INSTRUCTIONS,
        tools=tools,
        model=model if model is not None else scripted_model(question),
        model_settings=ModelSettings(parallel_tool_calls=True),
    )
    # Tracing would export to OpenAI's servers; the scripted run has nothing to send there.
    result = await Runner.run(agent, question, run_config=RunConfig(tracing_disabled=model is None))
    return str(result.final_output)


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="alice", help="the end user's external id (default alice)")
    parser.add_argument("--question", default="revenue by region")
    parser.add_argument("--model", help="a real model name (needs OPENAI_API_KEY); default: the scripted model")
    parser.add_argument("--sandbox", action="store_true", help="use the in-process sandbox even with OMNI_BASE_URL")
    args = parser.parse_args(argv)
    async with OmniConnection.from_settings(sandbox=args.sandbox) as omni:
        print(await ask(omni, args.user, args.question, model=args.model))
        if omni.sandbox is not None:
            print(f"MCP sessions opened at the sandbox: {sum(omni.sandbox.stats.sessions_opened.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
