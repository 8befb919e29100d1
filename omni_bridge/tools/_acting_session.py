"""One `httpx2` client for every pooled session, each request carrying the identity of the session it belongs to.

A client per session cost ~3 KiB each (headers, cookie jar, hooks) for what is, per session, only a handful of
fixed headers and, with embed tokens, a per-user auth flow. So the pool builds one client (`shared_mcp_client`)
and each session keeps its `SessionIdentity`. Which session a request belongs to travels in a context variable:

- the session's supervisor task sets it once for its whole life (`act_as`), so the open, the SDK's own tasks
  (created inside it, they inherit its context) and the close act as that session;
- each call sets it around its own requests (`acting_as`): the SDK sends a call's POST inside the caller's
  context (see `_mcp_errors`), which is where the identity is then read.

The client's auth flow copies the identity's headers onto the request and runs its per-user auth (the embed token
renewal on 401). A request with no session identity in its context is refused before anything is sent: no request
ever leaves with someone else's headers or with none. The client keeps no cookies, so nothing one user's answer set
can ride on another user's request.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx2

from omni_bridge.tools._mcp_errors import record_http_failure

__all__ = ["MissingSessionIdentity", "SessionIdentity", "act_as", "acting_as", "shared_mcp_client"]


class MissingSessionIdentity(RuntimeError):
    """An MCP request was about to leave without the identity of a session: a bug, refused rather than sent."""


@dataclass(frozen=True, slots=True, eq=False)
class SessionIdentity:
    """What one session's requests carry: its fixed headers, and its per-request auth flow if it has one."""

    headers: tuple[tuple[str, str], ...]
    auth: httpx2.Auth | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str], auth: httpx2.Auth | None) -> SessionIdentity:
        return cls(tuple(headers.items()), auth)

    def __repr__(self) -> str:  # the headers hold the organization key
        return f"<SessionIdentity {len(self.headers)} headers{' + auth flow' if self.auth else ''}>"


_ACTING: contextvars.ContextVar[SessionIdentity | None] = contextvars.ContextVar(
    "omni_bridge_acting_session", default=None
)


def act_as(identity: SessionIdentity) -> None:
    """From now on, in this context (a session's supervisor task), requests act as `identity`."""
    _ACTING.set(identity)


@contextlib.contextmanager
def acting_as(identity: SessionIdentity) -> Iterator[None]:
    """Requests sent from this context while the block runs act as `identity`."""
    token = _ACTING.set(identity)
    try:
        yield
    finally:
        _ACTING.reset(token)


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: object, request: object) -> bool:
        return False


class _ActingSessionAuth(httpx2.Auth):
    """Puts the acting session's headers on each request, then runs that session's own auth flow."""

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        identity = _ACTING.get()
        if identity is None:
            raise MissingSessionIdentity(f"refused to send an MCP request with no session identity: {request.method}")
        for name, value in identity.headers:
            request.headers[name] = value
        if identity.auth is None:
            yield request
            return
        flow = identity.auth.async_auth_flow(request)
        outgoing = await flow.__anext__()
        while True:
            response = yield outgoing
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return


def shared_mcp_client(transport: httpx2.AsyncBaseTransport, timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """The one client of a pool's sessions. Never close it: that would close the pool's transport."""
    return httpx2.AsyncClient(
        transport=transport,
        auth=_ActingSessionAuth(),
        timeout=timeout,
        cookies=CookieJar(policy=_NoCookies()),  # a jar, not `Cookies(...)`: the client would copy that into a new jar
        event_hooks={"response": [record_http_failure]},  # keeps the status the SDK drops (see _mcp_errors)
    )
