"""What the pool's sessions share, and what each keeps its own: one HTTP client, never one user's headers.

All sessions of a pool send through one `httpx2` client; each request takes its headers from the session it
belongs to. Identical `server/discover` answers are held once. An idle session keeps no message it has read.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from omni_bridge.sandbox import Sandbox, SandboxConfig
from omni_bridge.tools import SessionKey, SessionPool
from omni_bridge.tools._acting_session import MissingSessionIdentity, SessionIdentity, acting_as, shared_mcp_client
from omni_bridge.tools._session_transport import _ForgetfulReadStream
from tests.tools.http_faults import FaultyTransport
from tests.tools.test_pool import REGIONS, auth_options, key_for, regions_in


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxConfig(job_step_seconds=0.02))
    with box.run_in_thread():
        yield box


class RecordingTransport(FaultyTransport):
    """Notes, for every POST, the session id it carried and the credentials and user it acted as."""

    def __init__(self) -> None:
        super().__init__()
        self.identities: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.posts = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            self.posts += 1
            identity = (request.headers.get("authorization", ""), request.headers.get("x-mcp-user-id", ""))
            self.identities[request.headers.get("mcp-session-id", "")].add(identity)
        return await super().handle_async_request(request)


@pytest.mark.parametrize("auth", ["org_key", "embed_token"])
async def test_concurrent_calls_of_many_users_on_one_shared_client_each_carry_only_their_sessions_identity(
    sandbox: Sandbox, auth: str
) -> None:
    keys: dict[SessionKey, str] = {}
    for n in range(12):
        sandbox.directory.upsert_embed(f"share-{n}", f"Share {n}", attributes={"region": REGIONS[n % 4]})
        keys[key_for(sandbox, f"share-{n}")] = REGIONS[n % 4]
    transport = RecordingTransport()
    try:
        async with SessionPool(protocol="legacy", http_transport=transport, **auth_options(sandbox, auth)) as pool:

            async def ask(key: SessionKey) -> tuple[SessionKey, set[str]]:
                await pool.list_tools(key, refresh=True)
                return key, regions_in(await pool.call_tool(key, "getData", {"prompt": "revenue by region"}))

            answers = await asyncio.gather(*[ask(key) for _ in range(6) for key in keys])
    finally:
        await transport.aclose()

    assert all(seen == {keys[key]} for key, seen in answers)
    sessions = {sid: ids for sid, ids in transport.identities.items() if sid}
    assert len(sessions) == len(keys)  # one session per user, its id on its requests
    assert all(len(ids) == 1 for ids in sessions.values())  # each session's requests: one identity, always
    every_identity = set().union(*sessions.values())
    assert len(every_identity) == len(keys)  # and no two sessions share one
    if auth == "org_key":
        assert {user for _, user in every_identity} == {key.user_id for key in keys}
    else:
        assert {user for _, user in every_identity} == {""}  # the token is the user: no user header at all


async def test_a_request_sent_outside_any_session_is_refused_before_it_leaves() -> None:
    transport = RecordingTransport()
    http = shared_mcp_client(transport, httpx2.Timeout(5.0))
    with pytest.raises(MissingSessionIdentity):
        await http.post("http://127.0.0.1:9/mcp/https", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert transport.posts == 0
    await transport.aclose()


async def test_the_shared_client_keeps_no_cookie_of_one_users_answer_for_the_next() -> None:
    def set_cookie(request: httpx2.Request) -> httpx2.Response:
        cookies.append(request.headers.get("cookie"))
        return httpx2.Response(200, headers={"set-cookie": "sticky=alice-only; Path=/"}, json={})

    cookies: list[str | None] = []
    http = shared_mcp_client(httpx2.MockTransport(set_cookie), httpx2.Timeout(5.0))
    for user in ("alice", "bob"):
        with acting_as(SessionIdentity.of({"X-MCP-User-ID": user}, None)):
            await http.post("http://omni.test/mcp/https", content=json.dumps({}).encode())
    assert cookies == [None, None]
    assert len(http.cookies) == 0


async def test_sessions_of_one_server_hold_one_discover_answer_when_theirs_are_equal(sandbox: Sandbox) -> None:
    async with SessionPool(api_key=sandbox.config.org_key, protocol="auto") as pool:
        first, second = key_for(sandbox, "alice"), key_for(sandbox, "bob")
        await pool.call_tool(first, "pickModel", {})
        await pool.call_tool(second, "pickModel", {})
        held = [pool._leases._sessions[key].client for key in (first, second)]
        results = [client.session.discover_result for client in held if client is not None]
        assert len(results) == 2 and results[0] is not None
        assert results[0] is results[1]
        assert all(client is not None and client.protocol_version == "2026-07-28" for client in held)


async def test_the_read_stream_forgets_each_message_once_the_next_is_asked_for() -> None:
    send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](4)
    stream = _ForgetfulReadStream(receive)
    big = types.JSONRPCResponse(jsonrpc="2.0", id=1, result={"rows": ["x" * 1000] * 100})
    small = types.JSONRPCResponse(jsonrpc="2.0", id=2, result={})
    failure = ValueError("a transport error is passed on as it is")
    for item in (SessionMessage(big), SessionMessage(small), failure):
        await send.send(item)
    await send.aclose()

    first = await stream.receive()
    assert isinstance(first, SessionMessage) and first.message is big
    second = await stream.receive()
    assert isinstance(second, SessionMessage) and second.message is small
    assert first.message is not big and isinstance(first.message, types.JSONRPCNotification)
    assert await stream.receive() is failure
    assert second.message is not small
    assert [item async for item in stream] == []
    await stream.aclose()
