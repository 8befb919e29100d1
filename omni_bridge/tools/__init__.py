"""Everything that talks to Omni: MCP headers per user (more arrives with the client layer)."""

from omni_bridge.tools._headers import mcp_headers

__all__ = ["mcp_headers"]
