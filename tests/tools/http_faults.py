"""A shared `httpx2` transport for tests: records each MCP request and can sever one user's connection.

It stands where a proxy or a flaky network would: every request passes through, so the pool under test
runs unchanged; `kill(user_id)` makes that user's requests fail with a read error, as a reset connection
would, while other users' requests on the same transport go on.
"""

from __future__ import annotations

import json
from collections import Counter

import httpx2


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
