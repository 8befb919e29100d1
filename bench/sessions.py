"""How many MCP sessions 20 tool calls by one user open, per framework: the bridge's adapter vs the framework's client.

    .venv/bin/pip install 'omni-bridge[openai-agents,pydantic-ai,langchain]' 'pydantic-ai-slim[mcp]'
    .venv/bin/python bench/sessions.py [--json]

Counted at the sandbox (`sandbox.stats.sessions_opened`: one per `initialize` or `server/discover`), for two
shapes of "20 calls by one user", each driven by the framework's own scripted test model:

- 20 runs of one call each: a chatbot backend where every user message is an agent run. A framework MCP client
  carries its headers from construction, so for per-user headers it is built per run (the pattern each
  framework documents for per-user credentials: openai-agents-python#1566, pydantic-ai's "Per-user
  authentication", LangChain's `async with MCPAdapter(...)`).
- 1 run making 20 calls: one agent run whose model calls the tool 20 times.

The framework clients are `agents.mcp.MCPServerStreamableHttp`, `pydantic_ai.mcp.MCPToolset` (FastMCP client)
and `langchain.mcp.MCPAdapter` (FastMCP client). `langchain-mcp-adapters` caps `mcp` below 2, so it cannot be
installed beside the bridge; its source opens a session per tool call unless the caller holds one open.
This is a measurement, not a test: it prints a table (and with `--json`, as its last line, one JSON object of the
sessions opened per row, `<framework>_<bridge|native>_<runs>x<calls>_sessions` such as
`openai_agents_native_20x1_sessions`, `null` for a row whose framework is not installed). `pydantic-ai-slim[mcp]` brings
FastMCP, which the framework clients use; type-checking this script does not need it installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from omni_bridge import OmniConnection
from omni_bridge._serving import serve_asgi
from omni_bridge.integrations import McpProxy, proxy_http_app
from omni_bridge.sandbox import Sandbox, embed_user_id
from omni_bridge.tools import mcp_headers

CALLS = 20
QUESTION = {"prompt": "revenue by region"}


# --- scripted models: each calls getData `calls` times, then answers ----------------------------------------


def agents_model(calls: int) -> Any:
    from agents.testing import ScriptedModel, assistant_message, function_call

    steps: list[Any] = [[function_call("getData", QUESTION, call_id=f"call_{n}")] for n in range(calls)]
    return ScriptedModel([*steps, [assistant_message("done")]])


def pydantic_model(calls: int) -> Any:
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    def respond(messages: list[Any], info: Any) -> ModelResponse:
        done = sum(
            isinstance(part, ToolReturnPart) for m in messages if isinstance(m, ModelRequest) for part in m.parts
        )
        if done < calls:
            return ModelResponse(parts=[ToolCallPart("getData", QUESTION, tool_call_id=f"call_{done}")])
        return ModelResponse(parts=[TextPart("done")])

    return FunctionModel(respond)


def langchain_model(calls: int) -> Any:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class Scripted(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            done = sum(isinstance(m, ToolMessage) for m in messages)
            if done < calls:
                call = {"name": "getData", "args": QUESTION, "id": f"call_{done}"}
                reply = AIMessage(content="", tool_calls=[call])
            else:
                reply = AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=reply)])

    return Scripted()


# --- one run, through the bridge's adapter or the framework's own MCP client --------------------------------


async def bridge_agents(omni: OmniConnection, calls: int) -> None:
    from agents import Agent, RunConfig, Runner

    from omni_bridge.integrations.openai_agents import omni_tools

    agent = Agent(name="a", tools=await omni_tools(await omni.toolset("alice")), model=agents_model(calls))
    await Runner.run(agent, "q", run_config=RunConfig(tracing_disabled=True), max_turns=calls + 2)


async def native_agents(sandbox: Sandbox, calls: int) -> None:
    from agents import Agent, RunConfig, Runner
    from agents.mcp import MCPServerStreamableHttp

    headers = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))
    async with MCPServerStreamableHttp(params={"url": sandbox.mcp_url(), "headers": headers}) as server:
        agent = Agent(name="a", mcp_servers=[server], model=agents_model(calls))
        await Runner.run(agent, "q", run_config=RunConfig(tracing_disabled=True), max_turns=calls + 2)


async def bridge_pydantic(omni: OmniConnection, calls: int) -> None:
    from pydantic_ai import Agent

    from omni_bridge.integrations.pydantic_ai import OmniToolset

    await Agent(pydantic_model(calls)).run("q", toolsets=[OmniToolset(await omni.toolset("alice"))])


async def native_pydantic(sandbox: Sandbox, calls: int) -> None:
    from fastmcp.client import Client
    from fastmcp.client.transports import StreamableHttpTransport
    from pydantic_ai import Agent
    from pydantic_ai.mcp import MCPToolset

    headers = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))
    toolset = MCPToolset(Client(StreamableHttpTransport(sandbox.mcp_url(), headers=headers)))
    await Agent(pydantic_model(calls)).run("q", toolsets=[toolset])


async def bridge_langchain(omni: OmniConnection, calls: int) -> None:
    from langchain.agents import create_agent

    from omni_bridge.integrations.langchain import omni_tools

    agent = create_agent(langchain_model(calls), await omni_tools(await omni.toolset("alice")))
    await agent.ainvoke({"messages": [{"role": "user", "content": "q"}]}, {"recursion_limit": 4 * calls + 10})


async def native_langchain(sandbox: Sandbox, calls: int) -> None:
    from fastmcp.client import Client
    from fastmcp.client.transports import StreamableHttpTransport
    from langchain.agents import create_agent
    from langchain.mcp import MCPAdapter

    headers = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))
    async with MCPAdapter(Client(StreamableHttpTransport(sandbox.mcp_url(), headers=headers))) as adapter:
        agent = create_agent(langchain_model(calls), await adapter.list_tools())
        await agent.ainvoke({"messages": [{"role": "user", "content": "q"}]}, {"recursion_limit": 4 * calls + 10})


async def native_langchain_unheld(sandbox: Sandbox, calls: int) -> None:
    """`MCPAdapter`'s tools used without holding the adapter open: FastMCP connects per request."""
    from fastmcp.client import Client
    from fastmcp.client.transports import StreamableHttpTransport
    from langchain.agents import create_agent
    from langchain.mcp import MCPAdapter

    headers = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))
    adapter = MCPAdapter(Client(StreamableHttpTransport(sandbox.mcp_url(), headers=headers)))
    agent = create_agent(langchain_model(calls), await adapter.list_tools())
    await agent.ainvoke({"messages": [{"role": "user", "content": "q"}]}, {"recursion_limit": 4 * calls + 10})


@contextlib.asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    """A plain `mcp` client with `headers` on every request: one MCP session per connection."""
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=30)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


# --- counting ------------------------------------------------------------------------------------------------


async def count(
    sandbox: Sandbox, runs: int, calls: int, run: Callable[[], Awaitable[None]]
) -> tuple[int | None, int | None]:
    """(sessions opened, getData calls served) at the sandbox for `runs` runs of `calls` calls each; `None`s,
    and a line on stderr saying what to install, when the row's framework or client is not installed."""
    sandbox.stats.reset()
    try:
        for _ in range(runs):
            await run()
    except ModuleNotFoundError as exc:
        print(f"skipped a row: {exc.name} is not installed (see the install line in --help)", file=sys.stderr)
        return None, None
    served = sum(n for (_, tool), n in sandbox.stats.tool_calls.items() if tool == "getData")
    return sum(sandbox.stats.sessions_opened.values()), served


Row = tuple[str, str, str, int | None, int | None]
"""(JSON key, framework, client and shape, sessions opened, getData calls served)."""


async def measure(sandbox: Sandbox) -> list[Row]:
    assert sandbox.url is not None
    rows: list[Row] = []
    frameworks = [
        ("openai_agents", "OpenAI Agents SDK", bridge_agents, native_agents, "MCPServerStreamableHttp"),
        ("pydantic_ai", "pydantic-ai", bridge_pydantic, native_pydantic, "MCPToolset (FastMCP)"),
        ("langchain", "LangChain / LangGraph", bridge_langchain, native_langchain, "langchain.mcp.MCPAdapter"),
    ]
    for key, name, bridge, native, client in frameworks:
        for runs, calls in ((CALLS, 1), (1, CALLS)):
            shape = f"{runs} run{'s' if runs > 1 else ''} x {calls} call{'s' if calls > 1 else ''}"
            async with OmniConnection(base_url=sandbox.url, api_key=sandbox.config.org_key) as omni:
                opened, served = await count(sandbox, runs, calls, functools.partial(bridge, omni, calls))
            rows.append((f"{key}_bridge_{runs}x{calls}", name, f"omni-bridge adapter, {shape}", opened, served))
            opened, served = await count(sandbox, runs, calls, functools.partial(native, sandbox, calls))
            rows.append((f"{key}_native_{runs}x{calls}", name, f"{client}, {shape}", opened, served))
    opened, served = await count(sandbox, 1, CALLS, lambda: native_langchain_unheld(sandbox, CALLS))
    rows.append(
        (
            f"langchain_native_unheld_1x{CALLS}",
            "LangChain / LangGraph",
            f"MCPAdapter not held open, 1 run x {CALLS} calls",
            opened,
            served,
        )
    )
    rows.extend(await measure_proxy(sandbox))
    return rows


async def measure_proxy(sandbox: Sandbox) -> list[Row]:
    """20 MCP client connections of one user, each making one call: through the HTTP proxy, and straight to Omni."""
    assert sandbox.url is not None
    headers = {"Authorization": "Bearer svc", "X-Bridge-User": "alice"}
    direct = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))

    async def one_call(url: str, sent: dict[str, str]) -> None:
        async with mcp_client(url, sent) as client:
            await client.call_tool("getData", QUESTION)

    async with OmniConnection(base_url=sandbox.url, api_key=sandbox.config.org_key) as omni:
        async with serve_asgi(proxy_http_app(McpProxy(omni), service_keys=["svc"])) as url:
            via_proxy = await count(sandbox, CALLS, 1, lambda: one_call(url + "/mcp", headers))
    straight = await count(sandbox, CALLS, 1, lambda: one_call(sandbox.mcp_url(), direct))
    proxy = "MCP proxy (HTTP)"
    return [
        (f"mcp_proxy_{CALLS}x1", proxy, f"omni-bridge mcp-proxy, {CALLS} client connections x 1 call", *via_proxy),
        (f"mcp_direct_{CALLS}x1", proxy, f"mcp Client straight to Omni, {CALLS} connections x 1 call", *straight),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON object: sessions opened per row (`<row>_sessions`)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sandbox = Sandbox()
    with sandbox.run_in_thread():
        rows = asyncio.run(measure(sandbox))
    print("| framework | client, shape | MCP sessions opened | getData calls served |\n|---|---|---|---|")
    for _key, name, client, opened, served in rows:
        cells = ("not installed", "") if opened is None else (opened, served)
        print(f"| {name} | {client} | {cells[0]} | {cells[1]} |")
    if args.json:
        print(json.dumps({f"{key}_sessions": opened for key, _name, _client, opened, _served in rows}))


if __name__ == "__main__":
    main()
