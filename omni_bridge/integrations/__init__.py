"""Omni's tools for the clients and frameworks people already run, each call acting for the right end user.

- `McpProxy` (and `omni-bridge mcp-proxy`): an MCP server in front of Omni, over stdio for one user (Claude
  Desktop, Cursor, IDEs) or over streamable HTTP for many (`proxy_http_app`: service keys, the end user named per
  request).
- Framework adapters, each an optional extra that installs only its framework:
  `omni_bridge.integrations.openai_agents` (`omni-bridge[openai-agents]`),
  `omni_bridge.integrations.pydantic_ai` (`omni-bridge[pydantic-ai]`),
  `omni_bridge.integrations.langchain` (`omni-bridge[langchain]`).

All of them share an `omni_bridge.agent.OmniConnection`: one identity resolver and one session pool, so an end
user's calls reuse that user's MCP session instead of opening one per call or per run.
"""

from omni_bridge.integrations._proxy import McpProxy, SessionKeyOf
from omni_bridge.integrations._proxy_http import DEFAULT_USER_HEADER, ProxyGate, key_of_request, proxy_http_app

__all__ = [
    "DEFAULT_USER_HEADER",
    "McpProxy",
    "ProxyGate",
    "SessionKeyOf",
    "key_of_request",
    "proxy_http_app",
]
