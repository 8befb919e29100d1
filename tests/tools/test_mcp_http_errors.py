"""How the pool reads HTTP-level answers the `mcp` SDK flattens, against real servers on loopback.

The SDK turns any error body that is not a full JSON-RPC message into "Server returned an error response"
and drops the status. The pool keeps the status and a short excerpt of the body, recognises the TypeScript
SDK's 400 for a forgotten session as expiry, and says what to do when `modern` meets a pre-2026 server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omni_bridge._serving import serve_asgi_in_thread
from omni_bridge.exceptions import McpError
from omni_bridge.tools import MemoryArtifactStore, SessionKey, SessionPool, Toolset
from tests.tools.http_faults import FaultyMcpServer

SECRET = "org-key-0123456789abcdef"


def serving(app: FaultyMcpServer) -> Iterator[str]:
    with serve_asgi_in_thread(app) as url:
        yield url + "/mcp"


@pytest.fixture
def faulty() -> Iterator[tuple[FaultyMcpServer, str]]:
    app = FaultyMcpServer()
    for url in serving(app):
        yield app, url


def key(url: str) -> SessionKey:
    return SessionKey(server=url, user_id="user-1")


@pytest.mark.parametrize(
    ("status", "content_type", "body", "words"),
    [
        (401, "text/plain", "Invalid API key {authorization} for this organization", "unauthorized"),
        (500, "text/html", "<html><body><h1>Upstream exploded</h1>" + "x" * 5000 + "</body></html>", "internal"),
    ],
)
@pytest.mark.parametrize("protocol", ["legacy", "modern"])
async def test_an_error_without_a_json_rpc_body_keeps_its_status_and_an_excerpt_never_the_key(
    status: int, content_type: str, body: str, words: str, protocol: str
) -> None:
    app = FaultyMcpServer(refusal=(status, content_type, body))
    for url in serving(app):
        async with SessionPool(api_key=SECRET, protocol=protocol) as pool:  # type: ignore[arg-type]
            with pytest.raises(McpError) as refused:
                await pool.call_tool(key(url), "add", {"a": 1, "b": 2})
    error = refused.value
    assert error.status == status
    assert str(status) in str(error) and words in str(error).lower()
    expected = "Invalid API key [redacted]" if status == 401 else "<html><body><h1>Upstream exploded</h1>"
    assert expected in error.message
    assert len(error.message) < 400  # the excerpt is bounded
    assert SECRET not in str(error) and SECRET not in repr(error)


async def test_a_400_naming_the_session_reopens_it_and_the_call_runs_once(
    faulty: tuple[FaultyMcpServer, str],
) -> None:
    app, url = faulty
    async with SessionPool(api_key=SECRET, protocol="legacy") as pool:
        assert (await pool.call_tool(key(url), "add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        app.forget_sessions()  # as the TypeScript SDK answers after a restart

        result = await pool.call_tool(key(url), "add", {"a": 2, "b": 3})

        assert result.structured_content == {"result": 5}
        assert pool.stats().expired_total == 1 and pool.stats().opened_total == 2
    assert app.calls == 2  # the refused call never ran, so its retry is its only run


async def test_a_toolset_recovers_from_a_forgotten_session_without_an_error_result(
    faulty: tuple[FaultyMcpServer, str],
) -> None:
    app, url = faulty
    async with SessionPool(api_key=SECRET, protocol="legacy") as pool:
        toolset = Toolset(pool, key(url), artifacts=MemoryArtifactStore())
        assert not (await toolset.call("add", {"a": 1, "b": 1})).is_error
        app.forget_sessions()
        outcome = await toolset.call("add", {"a": 4, "b": 4})
    assert not outcome.is_error and "8" in outcome.result.text


async def test_modern_against_a_server_without_2026_07_28_says_to_use_auto_or_legacy() -> None:
    app = FaultyMcpServer(legacy_only=True)
    for url in serving(app):
        async with SessionPool(api_key=SECRET, protocol="modern") as pool:
            with pytest.raises(McpError) as refused:
                await pool.call_tool(key(url), "add", {"a": 1, "b": 2})
        async with SessionPool(api_key=SECRET, protocol="auto") as pool:
            answer = await pool.call_tool(key(url), "add", {"a": 1, "b": 2})
    message = str(refused.value)
    assert "2026-07-28" in message and "OMNI_MCP_PROTOCOL=auto or legacy" in message
    assert refused.value.status == 400
    assert answer.structured_content == {"result": 3}  # the same server is fine when the pool negotiates
