"""What every sandbox request passes before it is served: injected faults, the rate limit, auth, identity.

`McpGate` wraps the `mcp` SDK's streamable-HTTP app. It resolves the caller from the headers of *every*
request (not only `initialize`), refuses with a JSON-RPC error body at the matching HTTP status (the `mcp`
client surfaces that body's message as `MCPError`), binds each legacy session to the user that opened it,
and emulates session expiry: after `drop_sessions()` every older `Mcp-Session-Id` gets 404
`Session not found`, as the SDK's own server answers for a session it no longer knows.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omni_bridge.sandbox._caller import Caller, caller_from_headers
from omni_bridge.sandbox._directory import ApiKey, Directory
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._faults import Faults, Stats

__all__ = ["CALLER_STATE", "McpGate", "RateLimiter", "check_faults"]

CALLER_STATE = "omni_sandbox_caller"
"""Key of the resolved `Caller` in the ASGI scope's `state` (read by the MCP tool handlers)."""

JSONRPC_SERVER_ERROR = -32000
JSONRPC_INVALID_REQUEST = -32600


class RateLimiter:
    """Requests per key in a sliding 60-second window, like Omni's per-key limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def retry_after(self, key: ApiKey, limit: int | None) -> int | None:
        """Seconds to wait when `key` is over `limit` per minute, else `None` (and the request counts)."""
        if limit is None:
            return None
        now = time.monotonic()
        ident = hashlib.sha256(key.token.encode()).hexdigest()  # never keep raw keys as dict keys
        with self._lock:
            window = self._seen.setdefault(ident, deque())
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= limit:
                return max(1, int(60 - (now - window[0])) + 1)
            window.append(now)
            return None


async def check_faults(faults: Faults) -> SandboxHTTPError | None:
    """Apply latency, then maybe pick an injected error; called before auth, as a proxy would fail."""
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.should_fail():
        if faults.error_status == 429:
            return SandboxHTTPError(429, "Too Many Requests (injected)", headers={"Retry-After": "1"})
        return SandboxHTTPError(faults.error_status, "Service unavailable (injected)")
    return None


def admit(directory: Directory, limiter: RateLimiter, faults: Faults, headers: Headers) -> Caller:
    """Authenticate, enforce the rate limit, and resolve whom the request acts for."""
    caller = caller_from_headers(directory, headers)
    wait = limiter.retry_after(caller.key, faults.rate_limit_per_minute)
    if wait is not None:
        raise SandboxHTTPError(429, "Too Many Requests: rate limit exceeded", headers={"Retry-After": str(wait)})
    return caller


def _jsonrpc_error(status: int, message: str, *, code: int = JSONRPC_SERVER_ERROR, headers: Any = None) -> Any:
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": message, "data": {"status": status, "detail": message}},
    }
    return JSONResponse(body, status_code=status, headers=headers)


class McpGate:
    """ASGI middleware in front of the MCP endpoint."""

    def __init__(
        self, app: ASGIApp, *, directory: Directory, faults: Faults, stats: Stats, limiter: RateLimiter
    ) -> None:
        self._app = app
        self._directory = directory
        self._faults = faults
        self._stats = stats
        self._limiter = limiter
        self._sessions: dict[str, tuple[str, int]] = {}  # Mcp-Session-Id → (user id, epoch it was opened in)
        self._epoch = 0

    def drop_sessions(self) -> int:
        """Expire every open legacy session; returns how many there were."""
        dropped = sum(1 for _, epoch in self._sessions.values() if epoch == self._epoch)
        self._epoch += 1
        self._stats.count("mcp.sessions_dropped", dropped)
        return dropped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        self._stats.count("mcp.requests")
        failure = await check_faults(self._faults)
        if failure is not None:
            await _jsonrpc_error(failure.status, failure.detail, headers=failure.headers)(scope, receive, send)
            return
        try:
            caller = admit(self._directory, self._limiter, self._faults, headers)
        except SandboxHTTPError as exc:
            self._stats.count(f"mcp.refused.{exc.status}")
            await _jsonrpc_error(exc.status, exc.detail, headers=exc.headers)(scope, receive, send)
            return
        session_id = headers.get("mcp-session-id")
        if session_id is not None and session_id in self._sessions:
            owner, epoch = self._sessions[session_id]
            if epoch < self._epoch:
                response = _jsonrpc_error(404, "Session not found", code=JSONRPC_INVALID_REQUEST)
                await response(scope, receive, send)
                return
            if owner != caller.user.id:
                self._stats.count("mcp.refused.session_user_mismatch")
                await _jsonrpc_error(403, "Forbidden: this MCP session was opened for another user")(
                    scope, receive, send
                )
                return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self._app(scope, receive, self._remember_session(send, caller, session_id))

    def _remember_session(self, send: Send, caller: Caller, session_id: str | None) -> Send:
        if session_id is not None:
            return send

        async def send_and_remember(message: Message) -> None:
            if message["type"] == "http.response.start":
                new_id = MutableHeaders(scope=message).get("mcp-session-id")
                if new_id is not None:
                    self._sessions[new_id] = (caller.user.id, self._epoch)
            await send(message)

        return send_and_remember
