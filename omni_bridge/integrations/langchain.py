"""Omni's tools for LangChain and LangGraph, for one end user per run.

`langchain-mcp-adapters` opens a new MCP session for every tool call unless the caller holds one open, and its
per-user headers force a fresh session per call (peers.md §2); it also caps `mcp` below 2. Here each Omni tool
is a LangChain `StructuredTool` (async) that calls through the bridge's `Toolset`: the end user's calls run on
that user's pooled session, results come back cut to the token budget (with the bridge-local `read_result` tool
for the rest), and Omni's refusals reach the model as text it can act on. The tools work anywhere LangChain tools
do: `langchain.agents.create_agent`, a LangGraph `ToolNode`, or `model.bind_tools`.

Each tool answers with `response_format="content_and_artifact"`: the model sees the text, and the `ToolMessage`
carries the whole `ShapedResult` as its artifact (row count, the kept result's id, a chart when one fits), for the
application to render.

```python
from langchain.agents import create_agent
from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.langchain import omni_tools

async with OmniConnection.from_settings() as omni:
    tools = await omni_tools(await omni.toolset("cust-42"))       # this run's end user
    agent = create_agent(model, tools)
    state = await agent.ainvoke({"messages": [{"role": "user", "content": "revenue by region"}]})
```

Install with `pip install 'omni-bridge[langchain]'` (langchain, langchain-core and langgraph).
"""

from __future__ import annotations

from typing import Any

from omni_bridge.tools import ClaudeTool, ShapedResult, Toolset

try:
    from langchain_core.tools import StructuredTool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "omni_bridge.integrations.langchain needs langchain-core: pip install 'omni-bridge[langchain]'"
    ) from exc

__all__ = ["omni_tools"]


async def omni_tools(toolset: Toolset) -> list[StructuredTool]:
    """Omni's tools for `toolset`'s end user (plus `read_result`), as async LangChain tools.

    Build them per run (or per user): they act for that one user. Building them lists the user's tools once
    (cached per user by the pool); calling them opens no session of their own. They are async only (`ainvoke`).
    """
    return [_structured_tool(toolset, definition) for definition in await toolset.definitions()]


def _structured_tool(toolset: Toolset, definition: ClaudeTool) -> StructuredTool:
    name = str(definition["name"])

    async def call(**arguments: Any) -> tuple[str | list[dict[str, Any]], ShapedResult]:
        outcome = await toolset.call(name, arguments)
        result = outcome.result
        if any(block["type"] == "image" for block in result.content):
            return [_langchain_block(block) for block in result.content], result
        return result.text, result

    return StructuredTool(
        name=name,
        description=str(definition["description"]),
        args_schema=definition["input_schema"],
        coroutine=call,
        response_format="content_and_artifact",
    )


def _langchain_block(block: dict[str, Any]) -> dict[str, Any]:
    """A LangChain standard content block for one shaped (Messages API) block: text or a base64 image."""
    if block["type"] == "image":
        source = block["source"]
        return {"type": "image", "base64": source["data"], "mime_type": source["media_type"]}
    return {"type": "text", "text": block["text"]}
