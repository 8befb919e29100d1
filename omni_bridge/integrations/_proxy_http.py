"""The MCP proxy over streamable HTTP, for shared deployments: bearer service keys, the end user named per request.

A gate (plain ASGI, like the sandbox's) stands in front of the `mcp` SDK's streamable-HTTP app and decides, for
*every* request, who is calling and for whom, before the SDK sees it:

- the caller shows a service key (`Authorization: Bearer …`); keys are kept only as SHA-256 digests and
  compared in constant time;
- the request names its end user in a header (`X-Bridge-User: <external id>` by default); there is no default
  user, so a request without one is refused with a message saying which header to send;
- the end user is resolved to an Omni id (cached by the resolver) and the request's `SessionKey` is left in the
  ASGI scope, where the proxy's handlers read it: each request is served through that user's pooled session;
- a legacy MCP session (`Mcp-Session-Id`) is bound to the service key and user that opened it; the same session
  id sent with another user or key is refused, and so is one the gate does not know. Modern (2026-07-28) requests
  carry no session, so each is judged on its own headers.

So one user can never reach another's session or tool list: the tool list is listed per key by the pool, and
the key comes from the request's own headers.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omni_bridge._bounded import BoundedMap
from omni_bridge._host_check import host_check
from omni_bridge.exceptions import ConfigError, IdentityError, OmniError
from omni_bridge.integrations._proxy import McpProxy
from omni_bridge.tools import SessionKey

__all__ = ["DEFAULT_USER_HEADER", "ProxyGate", "key_of_request", "proxy_http_app"]

log = logging.getLogger("omni_bridge.proxy")

DEFAULT_USER_HEADER = "X-Bridge-User"
_KEY_STATE = "omni_bridge_session_key"
"""Where the gate leaves the request's `SessionKey` in the ASGI scope's `state`."""
_SERVER_ERROR = -32000
_INVALID_REQUEST = -32600


def key_of_request(ctx: ServerRequestContext[Any, Any]) -> SessionKey:
    """The session key the gate admitted this request with (the proxy's `SessionKeyOf` over HTTP)."""
    request = ctx.request
    key = request.scope.get("state", {}).get(_KEY_STATE) if request is not None else None
    if not isinstance(key, SessionKey):
        raise MCPError(_SERVER_ERROR, "No end user for this request: it did not pass the proxy's gate")
    return key


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class ProxyGate:
    """ASGI middleware in front of the MCP endpoint: service key, end user, session binding."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service_keys: Sequence[str],
        resolve: Callable[[str], Awaitable[SessionKey]],
        user_header: str = DEFAULT_USER_HEADER,
        max_sessions: int = 10_000,
    ) -> None:
        """Args:
        app: the SDK's streamable-HTTP app.
        service_keys: the bearer keys callers may use; only their digests are kept.
        resolve: the session key of an end user's external id (raises `IdentityError` for an unknown user).
        user_header: the header naming the end user.
        max_sessions: legacy sessions remembered at most; a forgotten session is refused, never let through.
        """
        digests = [_digest(key) for key in service_keys if key.strip()]
        if not digests:
            raise ConfigError("BRIDGE_SERVICE_KEYS: the HTTP proxy needs at least one service key for its callers")
        self._app = app
        self._digests = digests
        self._resolve = resolve
        self._user_header = user_header
        # Mcp-Session-Id -> (service key digest, session key digest) of whoever opened it; least recent forgotten.
        self._sessions: BoundedMap[str, tuple[bytes, str]] = BoundedMap(max_sessions)

    def __repr__(self) -> str:
        return f"<ProxyGate service_keys={len(self._digests)} sessions={len(self._sessions)}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        caller = self._caller(headers.get("authorization", ""))
        if caller is None:
            await _refuse(401, "Unauthorized: send a bridge service key as `Authorization: Bearer <key>`")(
                scope, receive, send
            )
            return
        external_id = headers.get(self._user_header, "").strip()
        if not external_id:
            message = (
                f"No end user: this proxy serves many users and never picks one; name the end user (their external "
                f"id) in the {self._user_header} header"
            )
            await _refuse(400, message)(scope, receive, send)
            return
        try:
            key = await self._resolve(external_id)
        except IdentityError as exc:
            await _refuse(403, f"Forbidden: {exc}")(scope, receive, send)
            return
        except OmniError as exc:
            log.warning("resolving an end user failed: %s", exc)
            await _refuse(502, f"Omni could not resolve the end user: {exc}")(scope, receive, send)
            return
        owner = (caller, key.digest)
        session_id = headers.get("mcp-session-id")
        if session_id is not None:
            bound = self._sessions.get(session_id)
            if bound is None:
                await _refuse(404, "Session not found", code=_INVALID_REQUEST)(scope, receive, send)
                return
            if not hmac.compare_digest(bound[0], caller) or bound[1] != key.digest:
                await _refuse(403, "Forbidden: this MCP session was opened for another user")(scope, receive, send)
                return
        scope.setdefault("state", {})[_KEY_STATE] = key
        await self._app(scope, receive, self._watch(send, owner, session_id, scope["method"]))

    def _caller(self, authorization: str) -> bytes | None:
        """The digest of the service key the request shows, or `None` if it shows none of ours."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = _digest(token.strip())
        found = None
        for known in self._digests:  # every key is compared, so timing tells nothing about which matched
            if hmac.compare_digest(known, digest):
                found = known
        return found

    def _watch(self, send: Send, owner: tuple[bytes, str], session_id: str | None, method: str) -> Send:
        """Bind a session the response opens to `owner`; forget one a `DELETE` closed."""

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if session_id is None:
                    opened = MutableHeaders(scope=message).get("mcp-session-id")
                    if opened is not None:
                        self._sessions.put(opened, owner)
                elif method == "DELETE" and message["status"] < 300:
                    self._sessions.pop(session_id)
            await send(message)

        return watching_send


def _refuse(status: int, message: str, *, code: int = _SERVER_ERROR) -> JSONResponse:
    """A JSON-RPC error body at an HTTP status: MCP clients surface its message as an `MCPError`."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message, "data": {"status": status}}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def proxy_http_app(
    proxy: McpProxy,
    *,
    service_keys: Sequence[str],
    path: str = "/mcp",
    user_header: str = DEFAULT_USER_HEADER,
    host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
) -> Starlette:
    """The proxy as a Starlette app: streamable-HTTP MCP at `path`, behind a `ProxyGate`.

    Args:
        proxy: the proxy; its connection must be open while the app serves.
        service_keys: bearer keys the calling backends use (at least one).
        path: where MCP is served.
        user_header: the request header naming the end user's external id.
        host: the interface served on. On loopback, only loopback `Host`/`Origin` values are accepted (others
            get 421/403: a DNS-rebinding defence). Off loopback the check is off unless `allowed_hosts` is
            given, since the service key is what admits a caller.
        allowed_hosts: names (`bridge.example.com`, any port) or `name:port` values to accept in `Host` and
            `Origin` besides loopback ones; given, the check is on wherever the proxy is bound.

    Raises:
        ConfigError: no service key was given.
    """
    server = proxy.server(key_of_request)
    security = host_check(host, allowed_hosts)
    mcp_app = server.streamable_http_app(streamable_http_path=path, transport_security=security)
    connection = proxy.connection

    async def key_of_user(external_id: str) -> SessionKey:
        return connection.session_key(await connection.resolve(external_id))

    gate = ProxyGate(mcp_app, service_keys=service_keys, resolve=key_of_user, user_header=user_header)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # A mounted app's own lifespan never runs, so the parent runs the session manager the MCP app needs.
        async with server.session_manager.run():
            yield

    return Starlette(routes=[Route(path, endpoint=gate)], lifespan=lifespan)
