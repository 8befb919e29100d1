"""A LangChain agent (LangGraph underneath) answering with Omni's data as one end user, on their pooled session.

    pip install 'omni-bridge[langchain]'
    python examples/langchain_omni.py --user alice --question "revenue by region"

With no `OMNI_BASE_URL` it runs against the in-process sandbox, where row-level security shows each user only
their own region (alice: West, bob: East). LangChain ships no fake chat model that calls tools, so the model
here is a ten-line `BaseChatModel` (no API key, no network): it calls `getData` with the question, then answers
with what Omni returned. Pass `--model anthropic:claude-sonnet-5-5` (with `langchain-anthropic` installed and
its key set) to let a real model drive the same tools.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.langchain import omni_tools

SYSTEM_PROMPT = "Answer questions about the user's business data with Omni's tools. Quote the numbers."


class ScriptedChatModel(BaseChatModel):
    """A model that asks Omni the question once (`getData`), then answers with Omni's result."""

    question: str

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        returns = [m for m in messages if isinstance(m, ToolMessage)]
        if returns:
            reply = AIMessage(content=f"Here is what Omni found:\n{returns[-1].text}")
        else:
            call = {"name": "getData", "args": {"prompt": self.question}, "id": "call_1"}
            reply = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


async def ask(omni: OmniConnection, user: str, question: str, *, model: BaseChatModel | str | None = None) -> str:
    """Answer `question` as the end user `user` (external id): Omni's tools for that user, one agent run."""
    tools = await omni_tools(await omni.toolset(user))
    agent = create_agent(model or ScriptedChatModel(question=question), tools, system_prompt=SYSTEM_PROMPT)
    state = await agent.ainvoke({"messages": [{"role": "user", "content": question}]})
    return str(state["messages"][-1].text)


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
