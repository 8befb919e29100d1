"""The MCP proxy over streamable HTTP: service keys, the end user named per request, isolation between users.

Every test runs under both auth strategies (the org key plus `X-MCP-User-ID`, and per-user embed MCP tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from starlette.applications import Starlette
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.agent import OmniConnection
from omni_bridge.integrations import McpProxy, proxy_http_app
from omni_bridge.sandbox import Sandbox, embed_user_id
from omni_bridge.tools import CODE_ONLY_TOOLS, ToolPolicy
from tests.integrations.helpers import REGIONS, regions_of
from tests.sandbox.mcp_helpers import mcp_client, refusal, text_of, wait_until

SERVICE_KEY = "svc-test-key-0123456789"
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])


@pytest.fixture(params=["org_key", "embed_token"])
async def omni(sandbox: Sandbox, request: pytest.FixtureRequest) -> AsyncIterator[OmniConnection]:
    """The package's connection, under each auth strategy: every test of this module runs under both."""
    assert sandbox.url is not None
    secret = sandbox.config.embed_secret
    async with OmniConnection(
        base_url=sandbox.url, api_key=sandbox.config.org_key, auth=request.param, embed_secret=secret
    ) as connection:
        yield connection


@pytest.fixture
async def proxy_url(omni: OmniConnection) -> AsyncIterator[str]:
    app = proxy_http_app(McpProxy(omni), service_keys=[SERVICE_KEY])
    async with serve_asgi(app) as url:
        yield url + "/mcp"


def as_user(user: str | None, *, key: str | None = SERVICE_KEY) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    if user is not None:
        headers["X-Bridge-User"] = user
    return headers


@MODES
async def test_an_mcp_client_lists_and_calls_tools_as_the_user_its_requests_name(
    sandbox: Sandbox, proxy_url: str, mode: Any
) -> None:
    async with mcp_client(proxy_url, as_user("alice"), mode=mode) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        results = [await client.call_tool("getData", {"prompt": "revenue by region"}) for _ in range(5)]

    assert tools == [tool.name for tool in sandbox.tools._tools if tool.name not in CODE_ONLY_TOOLS]
    assert all(regions_of(result) == {REGIONS["alice"]} for result in results)
    assert sandbox.stats.sessions_opened == {embed_user_id("alice"): 1}


@MODES
async def test_two_users_through_one_proxy_at_once_each_see_only_their_own_rows(
    sandbox: Sandbox, proxy_url: str, mode: Any
) -> None:
    async def ask_ten(user: str) -> list[set[str]]:
        async with mcp_client(proxy_url, as_user(user), mode=mode) as client:
            calls = [client.call_tool("getData", {"prompt": "revenue by region"}) for _ in range(10)]
            return [regions_of(result) for result in await asyncio.gather(*calls)]

    # Each call holds its place at Omni a moment, so the two users' calls are in flight together.
    sandbox.set_faults(slow_tool_seconds=0.5, slow_tool_name="getData")
    alice, bob = await asyncio.gather(ask_ten("alice"), ask_ten("bob"))

    assert alice == [{REGIONS["alice"]}] * 10
    assert bob == [{REGIONS["bob"]}] * 10
    assert sandbox.stats.sessions_opened == {embed_user_id("alice"): 1, embed_user_id("bob"): 1}
    assert sandbox.stats.max_in_flight > 10  # both users' calls overlapped


async def test_a_request_naming_no_user_is_refused_with_a_message_naming_the_header(
    sandbox: Sandbox, proxy_url: str
) -> None:
    error = await refusal(proxy_url, as_user(None))

    assert error.message.startswith("No end user:")
    assert "X-Bridge-User" in error.message
    assert error.data == {"status": 400}
    assert sandbox.stats.sessions_opened == {}


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_a_caller_without_a_service_key_is_refused_and_no_key_is_echoed(
    sandbox: Sandbox, proxy_url: str, key: str | None
) -> None:
    error = await refusal(proxy_url, as_user("alice", key=key))

    assert error.data == {"status": 401}
    assert "service key" in error.message
    assert SERVICE_KEY not in error.message and "wrong-key" not in error.message
    assert sandbox.stats.sessions_opened == {}


async def test_an_unknown_end_user_is_refused(sandbox: Sandbox, proxy_url: str) -> None:
    error = await refusal(proxy_url, as_user("mallory"))

    assert error.data == {"status": 403}
    assert "no embed user with external id 'mallory'" in error.message


async def test_a_legacy_session_cannot_be_used_by_another_user(sandbox: Sandbox, proxy_url: str) -> None:
    user = {"X-Bridge-User": "alice"}

    class SwitchableUser(httpx2.Auth):
        def auth_flow(self, request: httpx2.Request) -> Any:
            request.headers.update(user)
            yield request

    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with httpx2.AsyncClient(headers=headers, auth=SwitchableUser(), timeout=httpx2.Timeout(10, read=30)) as http:
        async with Client(streamable_http_client(proxy_url, http_client=http), mode="legacy") as client:
            assert regions_of(await client.call_tool("getData", {"prompt": "revenue by region"})) == {"West"}
            user["X-Bridge-User"] = "bob"
            with pytest.raises(MCPError) as refused:
                await client.call_tool("getData", {"prompt": "revenue by region"})
            user["X-Bridge-User"] = "alice"
            still_alice = await client.call_tool("getData", {"prompt": "revenue by region"})

    assert refused.value.message == "Forbidden: this MCP session was opened for another user"
    assert regions_of(still_alice) == {"West"}
    assert embed_user_id("bob") not in sandbox.stats.sessions_opened


@MODES
async def test_cancelling_a_call_through_the_proxy_cancels_it_at_omni(
    sandbox: Sandbox, proxy_url: str, mode: Any
) -> None:
    sandbox.set_faults(slow_tool_seconds=60.0, slow_tool_name="getData")
    async with mcp_client(proxy_url, as_user("carol"), mode=mode) as client:
        call = asyncio.create_task(client.call_tool("getData", {"prompt": "revenue by region"}))
        await wait_until(lambda: sandbox.stats.in_flight == 1)
        call.cancel()
        await wait_until(lambda: sandbox.stats.cancelled_tool_calls == [(embed_user_id("carol"), "getData")])

    assert call.cancelled()


async def test_a_call_past_its_deadline_fails_with_the_timeout_code_and_is_cancelled_at_omni(
    sandbox: Sandbox,
) -> None:
    assert sandbox.url is not None
    sandbox.set_faults(slow_tool_seconds=60.0, slow_tool_name="getData")
    async with OmniConnection(base_url=sandbox.url, api_key=sandbox.config.org_key, tool_timeout=0.2) as omni:
        async with serve_asgi(proxy_http_app(McpProxy(omni), service_keys=[SERVICE_KEY])) as url:
            async with mcp_client(url + "/mcp", as_user("alice")) as client:
                with pytest.raises(MCPError) as timed_out:
                    await client.call_tool("getData", {"prompt": "revenue by region"})
                await wait_until(lambda: sandbox.stats.cancelled_tool_calls == [(embed_user_id("alice"), "getData")])

    assert timed_out.value.code == -32001
    assert timed_out.value.message.startswith("getData timed out at Omni and was cancelled")


async def test_denied_tools_are_neither_listed_nor_callable(sandbox: Sandbox) -> None:
    assert sandbox.url is not None
    policy = ToolPolicy(deny=frozenset({"askOmni", "checkStatus"}))
    async with OmniConnection(base_url=sandbox.url, api_key=sandbox.config.org_key, policy=policy) as omni:
        async with serve_asgi(proxy_http_app(McpProxy(omni), service_keys=[SERVICE_KEY])) as url:
            async with mcp_client(url + "/mcp", as_user("alice")) as client:
                tools = [tool.name for tool in (await client.list_tools()).tools]
                denied = await client.call_tool("askOmni", {"prompt": "revenue by region"})

    assert tools == ["pickModel", "pickTopic", "getData", "searchOmniDocs"]
    assert denied.is_error and text_of(denied) == "Unknown tool: askOmni"
    assert sandbox.stats.tool_calls == {}


async def test_with_shaping_on_large_results_are_cut_and_read_result_pages_through_them(sandbox: Sandbox) -> None:
    assert sandbox.url is not None
    policy = ToolPolicy(budget_tokens=200)
    async with OmniConnection(base_url=sandbox.url, api_key=sandbox.config.org_key, policy=policy) as omni:
        app = proxy_http_app(McpProxy(omni, shape_results=True), service_keys=[SERVICE_KEY])
        async with serve_asgi(app) as url:
            async with mcp_client(url + "/mcp", as_user("alice")) as client:
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                preview = await client.call_tool("getData", {"prompt": "revenue by product"})
                result_id = text_of(preview).split('result_id "', 1)[1].split('"', 1)[0]
                page = await client.call_tool("read_result", {"result_id": result_id, "offset": 0, "limit": 5})
            async with mcp_client(url + "/mcp", as_user("bob")) as client:
                stolen = await client.call_tool("read_result", {"result_id": result_id})

    assert "read_result" in tools and all(tool.output_schema is None for tool in tools.values())
    assert not preview.is_error and preview.structured_content is None
    assert len(text_of(preview)) <= 200 * 4
    assert text_of(page).startswith("```csv\nProduct,") and "Rows 1-5 of 240" in text_of(page)
    assert stolen.is_error and f"No result with id {result_id!r}" in text_of(stolen)


async def test_progress_from_omni_reaches_a_client_that_asked_for_it(mode_free_upstream: str) -> None:
    async with OmniConnection(base_url=mode_free_upstream, api_key="upstream-key") as omni:
        server = McpProxy(omni).server(lambda ctx: omni.key("user-1"))
        app = server.streamable_http_app(streamable_http_path="/mcp")

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            async with server.session_manager.run():
                yield

        async with serve_asgi(Starlette(routes=[Route("/mcp", endpoint=app)], lifespan=lifespan)) as url:
            async with mcp_client(url + "/mcp", {}) as client:
                seen: list[tuple[float, float | None, str | None]] = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    seen.append((progress, total, message))

                result = await client.call_tool("count", {}, progress_callback=on_progress)
                quiet = await client.call_tool("count", {})

    assert seen == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]
    assert text_of(result) == "counted to 3 (progress asked: True)"
    assert text_of(quiet) == "counted to 3 (progress asked: False)"  # Omni is asked for progress only on request


@pytest.fixture
async def mode_free_upstream() -> AsyncIterator[str]:
    """A tiny MCP server standing in for Omni where the sandbox cannot: its one tool reports progress."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="count", input_schema={"type": "object"})])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        asked = params.meta is not None and params.meta.get("progress_token") is not None
        for step in (1, 2, 3):
            await ctx.session.report_progress(step, 3, f"step {step}")
        answer = f"counted to 3 (progress asked: {asked})"
        return types.CallToolResult(content=[types.TextContent(type="text", text=answer)])

    upstream = Server("upstream", on_list_tools=list_tools, on_call_tool=call_tool)
    async with serve_asgi(upstream.streamable_http_app(streamable_http_path="/mcp/https")) as url:
        yield url


async def _initialize_status(url: str, *, host: str | None = None, origin: str | None = None) -> int:
    """The HTTP status of an `initialize` from alice with a valid key, sent with the given `Host` and `Origin`."""
    headers = {**as_user("alice"), "Accept": "application/json, text/event-stream"}
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    async with httpx2.AsyncClient(timeout=10) as http:
        return (await http.post(url, json=body, headers=headers)).status_code


async def test_on_loopback_a_foreign_host_or_origin_is_refused(sandbox: Sandbox, proxy_url: str) -> None:
    port = proxy_url.split(":")[2].split("/")[0]

    assert await _initialize_status(proxy_url, host="evil.example.com") == 421
    assert await _initialize_status(proxy_url, origin="http://evil.example.com") == 403
    assert await _initialize_status(proxy_url, host=f"localhost:{port}", origin=f"http://localhost:{port}") == 200


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        (["bridge.example.test"], "bridge.example.test", 200),
        (["bridge.example.test"], "bridge.example.test:8766", 200),
        (["bridge.example.test"], "evil.example.com", 421),
        (["bridge.example.test:8766"], "bridge.example.test:9999", 421),
        ([], "evil.example.com", 200),  # off loopback with nothing configured the service key alone admits
    ],
)
async def test_off_loopback_the_configured_hosts_are_the_ones_accepted(
    sandbox: Sandbox, omni: OmniConnection, allowed: list[str], host: str, status: int
) -> None:
    app = proxy_http_app(McpProxy(omni), service_keys=[SERVICE_KEY], host="0.0.0.0", allowed_hosts=allowed)
    async with serve_asgi(app) as url:
        assert await _initialize_status(url + "/mcp", host=host) == status
