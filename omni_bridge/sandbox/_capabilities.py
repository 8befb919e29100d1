"""Omni's MCP capability settings and the tools each exposes: plain data, so a `SandboxConfig` can be checked
without importing the MCP server (`mcp` takes most of a second to import, and the console's start waits on it)."""

from __future__ import annotations

__all__ = ["CAPABILITIES", "TOOL_CAPABILITIES"]

CAPABILITIES = ("agentic", "single_shot", "docs_search")
"""Omni's AI Hub > MCP settings: agentic capabilities, single shot query generation, documentation search."""

TOOL_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "pickModel": ("agentic", "single_shot"),
    "pickTopic": ("agentic", "single_shot"),
    "getData": ("single_shot",),
    "askOmni": ("agentic",),
    "checkStatus": ("agentic",),
    "searchOmniDocs": ("docs_search",),
    "getJobChartPage": ("agentic",),
}
"""Which setting exposes each tool; the selectors are registered if either query setting is on."""
