"""The one retry loop of the session pool: run a call on a key's session, reopening it once if Omni forgot it.

Omni (or any MCP server) may forget a session: a restart, a timeout on its side, a load balancer that moved the
client. The call that finds out is refused before it runs, so it can be sent again on a fresh session without
running anything twice. Nothing else is ever retried here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from omni_bridge.exceptions import McpConnectError, SessionExpired
from omni_bridge.tools._acting_session import acting_as
from omni_bridge.tools._mcp_errors import mcp_errors
from omni_bridge.tools._session_key import SessionKey
from omni_bridge.tools._session_leases import SessionLeases

if TYPE_CHECKING:  # `mcp` is imported when a session opens, not to start: it takes most of a second
    from mcp import Client

__all__ = ["run_on_session"]

log = logging.getLogger("omni_bridge.pool")

_T = TypeVar("_T")


async def run_on_session(
    leases: SessionLeases, key: SessionKey, call: Callable[[Client], Awaitable[_T]], *, modern: bool
) -> _T:
    """`call` on `key`'s session, with the SDK's errors translated; once more on a new session if Omni forgot it.

    Retried, once: `SessionExpired`, i.e. a 404 to a request that carried the session id (the Python SDK's
    `Session not found`) or a 400 naming the session (the TypeScript SDK's "No valid session ID provided").
    Either answer means the server refused the request before running it, so the retry cannot run the call
    twice. A second expiry in a row is raised.

    Not retried: `McpConnectError` (the connection failed mid-way, so the call may have run; the session is
    retired and the error raised), and every other error (a refusal, a timeout), raised as it is.
    """
    for attempt in (1, 2):
        session = await leases.lease(key)
        try:
            assert session.client is not None and session.identity is not None  # a leased session is alive
            with mcp_errors(key.where, modern=modern), acting_as(session.identity):
                return await call(session.client)
        except SessionExpired:
            leases.expired(session)
            if attempt == 2:
                raise
            log.info("MCP session %s expired before the call ran; reopening and retrying once", key.digest)
        except McpConnectError:
            leases.retire(session)
            raise
        finally:
            leases.release(session)
    raise AssertionError("unreachable: the loop returns or raises")
