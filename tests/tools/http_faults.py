"""Fault tooling for the pool's tests: a recording `httpx2` transport, and an MCP server that misbehaves.

`FaultyTransport` is a shared `httpx2` transport that records each MCP request and can sever one user's
connection.

It stands where a proxy or a flaky network would: every request passes through, so the pool under test
runs unchanged; `kill(user_id)` makes that user's requests fail with a read error, as a reset connection
would, while other users' requests on the same transport go on.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx2
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class FaultyTransport(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.killed: set[str] = set()
        self.methods: Counter[tuple[str, str]] = Counter()
        """(user id, JSON-RPC method) of every POST seen."""
        self.authorizations: set[str] = set()

    def kill(self, user_id: str) -> None:
        self.killed.add(user_id)

    def heal(self, user_id: str) -> None:
        self.killed.discard(user_id)

    def count(self, method: str, user_id: str | None = None) -> int:
        return sum(n for (user, m), n in self.methods.items() if m == method and user_id in (None, user))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        user = request.headers.get("x-mcp-user-id", "")
        if request.method == "POST":
            try:
                body = json.loads(request.content)
            except ValueError:
                body = {}
            if isinstance(body, dict) and "method" in body:
                self.methods[(user, body["method"])] += 1
        if user in self.killed:
            raise httpx2.ReadError("connection reset (injected by the test)")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class FaultyMcpServer:
    """A real `MCPServer` behind an ASGI middleware that answers some requests the way other servers do.

    - `refusal`: every request answers that status and body, as an auth layer or a gateway in front of
      Omni would (a `401` page, a `500` page); the text may echo the credential, which must never surface.
    - `forget_sessions()`: from then on, a request on a session opened before gets the TypeScript SDK's answer
      after a restart (400, a JSON-RPC error naming the session, no `id`), and the server opens a new one.
    - `legacy_only`: a request without a session id other than `initialize` gets the 400 a pre-2026 Python
      server gives ("Missing session ID"): such a server does not speak 2026-07-28.

    `calls` counts the tool calls that reached the server, so a test can tell a retry that re-ran a call.
    """

    def __init__(self, *, refusal: tuple[int, str, str] | None = None, legacy_only: bool = False) -> None:
        self.refusal = refusal
        self.legacy_only = legacy_only
        self._seen: set[str] = set()
        self._forgotten: set[str] = set()
        self.calls = 0
        server = MCPServer("faulty-mcp")

        @server.tool()
        def add(a: int, b: int) -> int:
            """Add two numbers."""
            self.calls += 1
            return a + b

        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self._inner = server.streamable_http_app(transport_security=security)

    def forget_sessions(self) -> None:
        """Refuse every session opened so far (new ones work)."""
        self._forgotten |= self._seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        session = headers.get("mcp-session-id")
        answer: Response | None = None
        if session is not None:
            self._seen.add(session)
        if self.refusal is not None:
            status, content_type, text = self.refusal
            answer = Response(
                text.replace("{authorization}", headers.get("authorization", "")), status, media_type=content_type
            )
        elif session in self._forgotten:
            body = {"jsonrpc": "2.0", "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"}}
            answer = JSONResponse(body, status_code=400)
        elif self.legacy_only and session is None and scope["method"] == "POST":
            request = Request(scope, receive)
            raw = await request.body()
            message = json.loads(raw) if raw else {}
            if message.get("method") != "initialize":
                error = {"code": -32000, "message": "Bad Request: Missing session ID"}
                answer = JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=400)
            else:
                receive = _replay(raw, receive)
        if answer is not None:
            await answer(scope, receive, send)
            return
        await self._inner(scope, receive, send)


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI `receive` that hands over a body already read, then waits on the real one (for the disconnect)."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
