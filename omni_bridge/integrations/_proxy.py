"""`McpProxy`: an MCP server that serves Omni's tools to any MCP client, each request as the right end user.

Desktop clients (Claude Desktop, Cursor, IDEs) and agent frameworks speak MCP but cannot resolve an embed user
or pool per-user sessions. The proxy does both: a request's end user (fixed per process on stdio, named per
request over HTTP) becomes a `SessionKey`, and the call is forwarded on that user's pooled session.

Built on the `mcp` SDK's low-level `Server` (constructor handlers), as the sandbox is, because the proxy must
pass results through untouched rather than let a decorator framework re-validate or re-wrap them.

What passes through, faithfully:

- the tool list, as Omni sends it (names, schemas, output schemas, annotations), less the tools the operator
  denied (`BRIDGE_TOOLS_ALLOW`/`BRIDGE_TOOLS_DENY`); selectors are never hidden here;
- results, including `is_error` results, unchanged: the proxy is transparent by default;
- JSON-RPC errors with Omni's code and message; a deadline passed becomes `-32001` like a client-side timeout,
  a connection failure `-32000`;
- cancellation: a cancelled request cancels the forwarded call, and Omni is told (the SDK sends the cancel);
- progress: when the client asks for progress, Omni's progress notifications are relayed to it.

What never passes through: arguments that name an identity (`userId`, `X-MCP-User-ID`, ... at any depth; the rule
is `omni_bridge.tools.strip_identity_arguments`). The request's end user is the acting user, so they are removed
before the call is forwarded, and a text block appended to the result names them for the client's model.

With `shape_results=True` the proxy is no longer transparent: every result is cut to the token budget for an
LLM (a CSV preview plus a note), the full result is kept, and a bridge-local `read_result` tool pages through it.
Output schemas are then dropped from the list, since shaped results carry no structured content.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from omni_bridge import __version__
from omni_bridge.agent import OmniConnection
from omni_bridge.exceptions import McpConnectError, McpError, SessionExpired, ToolTimeout
from omni_bridge.tools import (
    DEFAULT_READ_LIMIT,
    READ_RESULT_TOOL,
    ReadResultError,
    SessionKey,
    read_result,
    shape_result,
    strip_identity_arguments,
)

__all__ = ["McpProxy", "SessionKeyOf"]

log = logging.getLogger("omni_bridge.proxy")

SessionKeyOf = Callable[[ServerRequestContext[Any, Any]], SessionKey]
"""Whom a request acts for: the session key of its end user (raises `MCPError` when there is none)."""

_CONNECTION_FAILED = -32000
_REQUEST_TIMEOUT = -32001
_READ_RESULT = str(READ_RESULT_TOOL["name"])


class McpProxy:
    """Omni's tools as an MCP server, each request forwarded on its end user's pooled session.

    ```python
    async with OmniConnection.from_settings() as omni:
        proxy = McpProxy(omni)
        await proxy.run_stdio(omni.session_key(await omni.resolve("cust-42")))   # one user, for a desktop client
        # or, for many users over HTTP: proxy_http_app(proxy, service_keys=[...])
    ```
    """

    def __init__(self, connection: OmniConnection, *, shape_results: bool = False) -> None:
        """Args:
        connection: the open (or about to be opened) connection whose pool and resolver serve the requests.
        shape_results: cut results to the token budget, keep them in full, and offer `read_result`; off by
            default, so the proxy passes Omni's results through unchanged.
        """
        self.connection = connection
        self.shape_results = shape_results
        # Selectors stay listed: a transparent proxy offers what Omni offers, less what the operator denied.
        self.policy = dataclasses.replace(connection.policy, hide_selectors=False, topic_selection="model")

    def __repr__(self) -> str:
        return f"<McpProxy {self.connection!r} shape_results={self.shape_results}>"

    # --- the MCP server ------------------------------------------------------------------------------------

    def server(self, key_of: SessionKeyOf) -> Server[Any]:
        """A new low-level MCP server whose requests act for `key_of(request)`.

        A fresh server each time: its streamable-HTTP session manager can run only once.
        """

        async def on_list_tools(
            ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return types.ListToolsResult(tools=await self.list_tools(key_of(ctx)))

        async def on_call_tool(
            ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            key = key_of(ctx)
            relay = None
            if params.meta is not None and params.meta.get("progress_token") is not None:

                async def relay(progress: float, total: float | None, message: str | None) -> None:
                    await ctx.session.report_progress(progress, total, message)

            return await self.call_tool(key, params.name, params.arguments or {}, progress=relay)

        return Server(
            "omni-bridge",
            version=__version__,
            instructions="Omni Analytics through omni-bridge: every tool runs as your own Omni user.",
            on_list_tools=on_list_tools,
            on_call_tool=on_call_tool,
        )

    async def run_stdio(self, key: SessionKey) -> None:
        """Serve MCP on stdin/stdout until the client closes them, every request acting for `key`."""
        server = self.server(lambda ctx: key)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    # --- forwarding ----------------------------------------------------------------------------------------

    async def list_tools(self, key: SessionKey) -> list[types.Tool]:
        """The tools `key`'s user is offered: Omni's (from the pool's per-user cache), less the denied ones."""
        try:
            tools = await self.connection.pool.list_tools(key)
        except McpError as exc:
            raise _as_mcp_error(exc, "tools/list") from exc
        offered = [tool for tool in tools if self.policy.offers(tool.name, key)]
        if not self.shape_results:
            return offered
        shaped = [tool.model_copy(update={"output_schema": None}) for tool in offered if tool.name != _READ_RESULT]
        return [*shaped, _read_result_tool()]

    async def call_tool(
        self,
        key: SessionKey,
        name: str,
        arguments: dict[str, Any],
        *,
        progress: ProgressFnT | None = None,
    ) -> types.CallToolResult:
        """Forward one call as `key`'s user; Omni's result comes back unchanged unless shaping is on.

        Raises:
            MCPError: Omni answered with a JSON-RPC error, the deadline passed (`-32001`), or Omni could not be
                reached (`-32000`); cancellation propagates to Omni through the pool.
        """
        if self.shape_results and name == _READ_RESULT:
            return await self._read_result(key, arguments)
        if not self.policy.offers(name, key):
            # Refused here, without reaching Omni, in the shape an MCP server gives an unknown tool.
            return _error_result(f"Unknown tool: {name}")
        stripped = strip_identity_arguments(arguments)
        try:
            result = await self.connection.pool.call_tool(key, name, stripped.arguments, progress_callback=progress)
        except McpError as exc:
            raise _as_mcp_error(exc, name) from exc
        if self.shape_results:
            shaped = await shape_result(
                result,
                tool=name,
                owner=key.user_id,
                budget_tokens=self.policy.budget_tokens,
                artifacts=self.connection.artifacts,
            )
            result = types.CallToolResult(
                content=[_mcp_block(block) for block in shaped.content], is_error=shaped.is_error
            )
        if stripped.note is not None:
            log.info("tool %s for %r: removed identity arguments %s", name, key, ", ".join(stripped.removed))
            note = types.TextContent(type="text", text=stripped.note)
            result = result.model_copy(update={"content": [*result.content, note]})
        return result

    async def _read_result(self, key: SessionKey, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            page = await read_result(
                self.connection.artifacts,
                owner=key.user_id,
                result_id=arguments.get("result_id", ""),
                offset=arguments.get("offset", 0),
                limit=arguments.get("limit", DEFAULT_READ_LIMIT),
                budget_tokens=self.policy.budget_tokens,
            )
        except ReadResultError as exc:
            return _error_result(str(exc))
        return types.CallToolResult(content=[types.TextContent(type="text", text=page.text)])


def _as_mcp_error(exc: McpError, what: str) -> MCPError:
    """The JSON-RPC error the proxy's client gets for a failed forward (never with secrets: none are in `exc`)."""
    if isinstance(exc, ToolTimeout):
        return MCPError(_REQUEST_TIMEOUT, f"{what} timed out at Omni and was cancelled: {exc.message}")
    if isinstance(exc, McpConnectError | SessionExpired):
        log.warning("forwarding %s failed: %s", what, exc)
        return MCPError(_CONNECTION_FAILED, f"Omni could not be reached for {what}: {exc.message}")
    data = {"status": exc.status} if exc.status is not None else None
    return MCPError(exc.code, exc.message, data)


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _read_result_tool() -> types.Tool:
    return types.Tool(
        name=_READ_RESULT,
        description=str(READ_RESULT_TOOL["description"]),
        input_schema=dict(READ_RESULT_TOOL["input_schema"]),
    )


def _mcp_block(block: dict[str, Any]) -> types.TextContent | types.ImageContent:
    """An MCP content block for one shaped (Messages API) block: shaping yields only text and images."""
    if block["type"] == "image":
        source = block["source"]
        return types.ImageContent(type="image", data=source["data"], mime_type=source["media_type"])
    return types.TextContent(type="text", text=block["text"])
