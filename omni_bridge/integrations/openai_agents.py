"""Omni's tools for the OpenAI Agents SDK (`openai-agents`), for one end user per run.

The SDK's own MCP client (`MCPServerStreamableHttp`) fixes its headers when it is built, so acting for many
users means one server object, and one MCP session, per user and run (openai-agents-python#1566). Here each
Omni tool becomes an SDK `FunctionTool` that calls through the bridge's `Toolset`: the end user's calls run on
that user's pooled session, results come back cut to the token budget (the full result stays available through
the bridge-local `read_result` tool), and Omni's refusals reach the model as text it can act on.

```python
from agents import Agent, Runner
from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.openai_agents import omni_tools

async with OmniConnection.from_settings() as omni:
    tools = await omni_tools(await omni.toolset("cust-42"))       # this run's end user
    agent = Agent(name="analyst", instructions="Answer with Omni's data.", tools=tools)
    result = await Runner.run(agent, "revenue by region")
```

Install with `pip install 'omni-bridge[openai-agents]'`.
"""

from __future__ import annotations

import json
from typing import Any

from omni_bridge.tools import ClaudeTool, Toolset

try:
    from agents import FunctionTool, Tool, ToolOutputImage, ToolOutputText
    from agents.tool_context import ToolContext
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "omni_bridge.integrations.openai_agents needs the OpenAI Agents SDK: pip install 'omni-bridge[openai-agents]'"
    ) from exc

__all__ = ["omni_tools"]

ToolOutput = ToolOutputText | ToolOutputImage


async def omni_tools(toolset: Toolset) -> list[Tool]:
    """Omni's tools for `toolset`'s end user (plus `read_result`), as OpenAI Agents SDK function tools.

    Build them per run (or per user): they act for that one user. Building them lists the user's tools once
    (cached per user by the pool); calling them opens no session of its own.
    """
    return [_function_tool(toolset, definition) for definition in await toolset.definitions()]


def _function_tool(toolset: Toolset, definition: ClaudeTool) -> FunctionTool:
    name = str(definition["name"])

    async def invoke(context: ToolContext[Any], arguments: str) -> str | list[ToolOutput]:
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return f"The arguments of {name} must be a JSON object."
        outcome = await toolset.call(name, parsed)
        images = [
            ToolOutputImage(image_url=f"data:{block['source']['media_type']};base64,{block['source']['data']}")
            for block in outcome.result.content
            if block["type"] == "image"
        ]
        if not images:
            return outcome.result.text
        return [ToolOutputText(text=outcome.result.text), *images]

    return FunctionTool(
        name=name,
        description=str(definition["description"]),
        params_json_schema=definition["input_schema"],
        on_invoke_tool=invoke,
        # Omni's schemas have optional fields, which the strict mode of function calling does not allow.
        strict_json_schema=False,
    )
