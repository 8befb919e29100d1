"""Omni's tools for pydantic-ai, as a toolset for one end user per run.

pydantic-ai's `MCPToolset` is one identity per instance; its documentation's answer for per-user credentials is
a toolset built per run from `ctx.deps`, which means one MCP session per run. `OmniToolset` is a pydantic-ai
`AbstractToolset` over the bridge's `Toolset` instead: the end user's calls run on that user's pooled session,
results come back cut to the token budget (with the bridge-local `read_result` tool for the rest), and Omni's
refusals reach the model as text it can act on.

```python
from pydantic_ai import Agent
from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.pydantic_ai import OmniToolset

agent = Agent("anthropic:claude-sonnet-5-5", instructions="Answer with Omni's data.")
async with OmniConnection.from_settings() as omni:
    toolset = OmniToolset(await omni.toolset("cust-42"))                 # this run's end user
    result = await agent.run("revenue by region", toolsets=[toolset])
```

Install with `pip install 'omni-bridge[pydantic-ai]'` (it needs only `pydantic-ai-slim`).
"""

from __future__ import annotations

from typing import Any

from pydantic_core import SchemaValidator, core_schema

from omni_bridge.tools import Toolset

try:
    from pydantic_ai import BinaryContent, RunContext, ToolReturn
    from pydantic_ai.tools import ToolDefinition
    from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "omni_bridge.integrations.pydantic_ai needs pydantic-ai: pip install 'omni-bridge[pydantic-ai]'"
    ) from exc

__all__ = ["OmniToolset"]

_ANY_OBJECT = SchemaValidator(core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()))
"""Arguments are validated by Omni (against its own schema), so here they need only be a JSON object."""


class OmniToolset(AbstractToolset[Any]):
    """Omni's tools for one end user (plus `read_result`), as a pydantic-ai toolset.

    Pass it per run (`agent.run(..., toolsets=[OmniToolset(toolset)])`), or return it from a function toolset
    that reads the end user from `ctx.deps`. It owns no connection: entering and leaving it costs nothing.
    """

    def __init__(self, toolset: Toolset, *, id: str | None = "omni", max_retries: int = 1) -> None:
        """Args:
        toolset: the end user's tools, from `OmniConnection.toolset(user)`.
        id: the toolset's id among the agent's toolsets (durable execution names its steps after it).
        max_retries: how often the model may retry a call pydantic-ai rejects before it reaches Omni.
        """
        self.toolset = toolset
        self._id = id
        self.max_retries = max_retries

    @property
    def id(self) -> str | None:
        return self._id

    def __repr__(self) -> str:
        return f"<OmniToolset {self.toolset!r}>"

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        tools: dict[str, ToolsetTool[Any]] = {}
        for definition in await self.toolset.definitions():
            name = str(definition["name"])
            tools[name] = ToolsetTool(
                toolset=self,
                tool_def=ToolDefinition(
                    name=name,
                    description=str(definition["description"]),
                    parameters_json_schema=definition["input_schema"],
                ),
                max_retries=self.max_retries,
                args_validator=_ANY_OBJECT,
            )
        return tools

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        outcome = await self.toolset.call(name, tool_args)
        images = [
            BinaryContent.from_data_uri(f"data:{block['source']['media_type']};base64,{block['source']['data']}")
            for block in outcome.result.content
            if block["type"] == "image"
        ]
        if not images:
            return outcome.result.text
        return ToolReturn(return_value=outcome.result.text, content=images)
