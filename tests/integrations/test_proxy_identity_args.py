"""The MCP proxy strips identity arguments too: a client's model cannot pick whom a forwarded call acts for."""

from __future__ import annotations

from mcp.types import TextContent

from omni_bridge.agent import OmniConnection
from omni_bridge.integrations import McpProxy
from omni_bridge.sandbox import Sandbox, embed_user_id
from tests.integrations.helpers import REGIONS, regions_of
from tests.sandbox.mcp_helpers import text_of


async def test_identity_arguments_are_removed_before_forwarding_and_the_result_says_so(
    sandbox: Sandbox, omni: OmniConnection
) -> None:
    bob = embed_user_id("bob")
    key = omni.session_key(await omni.resolve("alice"))
    arguments = {"prompt": "revenue by region", "userId": bob, "X_MCP_USER_ID": bob}
    for shape_results in (False, True):
        proxy = McpProxy(omni, shape_results=shape_results)
        result = await proxy.call_tool(key, "getData", dict(arguments))
        assert not result.is_error
        note = result.content[-1]
        assert isinstance(note, TextContent)
        assert note.text.startswith("Removed identity arguments: userId, X_MCP_USER_ID")
        if not shape_results:
            assert regions_of(result) == {REGIONS["alice"]}  # structured content passes through untouched
        assert "East" not in text_of(result)

    received = list(sandbox.stats.tool_arguments)
    assert received == [(embed_user_id("alice"), "getData", {"prompt": "revenue by region"})] * 2


async def test_calls_without_identity_arguments_pass_through_unchanged(sandbox: Sandbox, omni: OmniConnection) -> None:
    key = omni.session_key(await omni.resolve("carol"))
    result = await McpProxy(omni).call_tool(key, "getData", {"prompt": "revenue by region", "limit": 5})

    assert regions_of(result) == {REGIONS["carol"]}
    assert "Removed identity arguments" not in text_of(result)
    assert list(sandbox.stats.tool_arguments) == [
        (embed_user_id("carol"), "getData", {"prompt": "revenue by region", "limit": 5})
    ]
