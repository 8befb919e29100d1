"""The pool and the toolset against `@modelcontextprotocol/server-everything` (the TypeScript SDK's server).

It speaks only the legacy protocol (2025-11-25, `Mcp-Session-Id`) and, after a restart, answers an old session
with HTTP 400 "Bad Request: No valid session ID provided" rather than the Python SDK's 404: the pool must read
that as expiry too. Only its harmless tools are called (never `get-env` or `gzip-file-as-resource`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_bridge.exceptions import McpError
from omni_bridge.tools import MemoryArtifactStore, SessionKey, SessionPool, Toolset
from tests.interop.peers import EverythingServer


@pytest.fixture
def everything(tmp_path: Path) -> Iterator[EverythingServer]:
    server = EverythingServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def key(server: EverythingServer) -> SessionKey:
    return SessionKey(server=server.url, user_id="interop-user")


def text_of(result: object) -> str:
    content = getattr(result, "content", [])
    return " ".join(getattr(block, "text", "") for block in content)


async def test_the_pool_lists_and_calls_its_tools_and_an_unknown_tool_is_an_error_result(
    everything: EverythingServer,
) -> None:
    async with SessionPool(api_key="interop-key") as pool:
        names = [tool.name for tool in await pool.list_tools(key(everything))]
        echo = await pool.call_tool(key(everything), "echo", {"message": "hello from the bridge"})
        total = await pool.call_tool(key(everything), "get-sum", {"a": 19, "b": 23})
        unknown = await pool.call_tool(key(everything), "no-such-tool", {})

        assert {"echo", "get-sum"} <= set(names)
        assert not echo.is_error and "hello from the bridge" in text_of(echo)
        assert not total.is_error and "42" in text_of(total)
        assert unknown.is_error and "no-such-tool" in text_of(unknown)
        assert pool.stats().opened_total == 1


async def test_the_pool_reopens_a_session_the_restarted_server_forgot(everything: EverythingServer) -> None:
    async with SessionPool(api_key="interop-key", protocol="legacy") as pool:
        assert "before" in text_of(await pool.call_tool(key(everything), "echo", {"message": "before"}))
        everything.restart()

        after = await pool.call_tool(key(everything), "echo", {"message": "after"})
        again = await pool.call_tool(key(everything), "get-sum", {"a": 1, "b": 2})

        assert not after.is_error and "after" in text_of(after)
        assert "3" in text_of(again)
        assert pool.stats().expired_total == 1 and pool.stats().opened_total == 2


async def test_the_toolset_offers_its_tools_and_survives_a_restart(everything: EverythingServer) -> None:
    async with SessionPool(api_key="interop-key") as pool:
        toolset = Toolset(pool, key(everything), artifacts=MemoryArtifactStore())
        names = [d["name"] for d in await toolset.definitions()]
        first = await toolset.call("get-sum", {"a": 2, "b": 5})
        everything.restart()
        second = await toolset.call("echo", {"message": "still here"})
        unknown = await pool.call_tool(key(everything), "missing-tool", {})

    assert {"echo", "get-sum", "read_result"} <= set(names)
    assert not first.is_error and "7" in first.result.text
    assert not second.is_error and "still here" in second.result.text
    assert unknown.is_error


async def test_modern_against_this_legacy_only_server_says_to_use_auto_or_legacy(
    everything: EverythingServer,
) -> None:
    async with SessionPool(api_key="interop-key", protocol="modern") as pool:
        with pytest.raises(McpError) as refused:
            await pool.call_tool(key(everything), "echo", {"message": "hi"})
    assert "2026-07-28" in str(refused.value) and "OMNI_MCP_PROTOCOL=auto or legacy" in str(refused.value)
    assert refused.value.status == 400
