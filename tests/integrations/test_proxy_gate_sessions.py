"""The HTTP proxy's session bindings are bounded: past `max_sessions` the least recently used is forgotten, and a
forgotten session is refused (404, so the client opens a new one), never let through unchecked."""

from __future__ import annotations

import itertools

import httpx2
from starlette.types import Receive, Scope, Send

from omni_bridge.integrations import ProxyGate
from omni_bridge.tools import SessionKey

KEY = "proxy-gate-test-key-0123456789"
_ids = itertools.count(1)


async def opening_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the SDK's app: a request without a session opens one, named in `mcp-session-id`."""
    headers = [(b"content-type", b"application/json")]
    if not any(name == b"mcp-session-id" for name, _ in scope["headers"]):
        headers.append((b"mcp-session-id", f"s{next(_ids)}".encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def resolve(external_id: str) -> SessionKey:
    return SessionKey(server="http://omni.test/mcp/https", user_id=f"omni-{external_id}")


async def test_the_least_recently_used_session_is_forgotten_past_the_bound() -> None:
    gate = ProxyGate(opening_app, service_keys=[KEY], resolve=resolve, max_sessions=2)
    transport = httpx2.ASGITransport(app=gate)
    headers = {"Authorization": f"Bearer {KEY}", "X-Bridge-User": "alice"}
    async with httpx2.AsyncClient(transport=transport, base_url="http://proxy.test") as client:

        async def open_session() -> str:
            response = await client.post("/mcp", headers=headers, json={})
            assert response.status_code == 200
            return response.headers["mcp-session-id"]

        async def use(session_id: str) -> int:
            response = await client.post("/mcp", headers={**headers, "Mcp-Session-Id": session_id}, json={})
            return response.status_code

        first, second = await open_session(), await open_session()
        assert await use(first) == 200  # first is now the most recently used
        third = await open_session()  # past the bound: second, the least recently used, goes
        assert [await use(first), await use(third)] == [200, 200]
        assert await use(second) == 404
        assert len(gate._sessions) == 2
