"""The one place where `mcp` SDK and `httpx2` errors become omni-bridge errors.

The SDK reports trouble in several shapes (sdk-notes §1.5): a JSON-RPC `MCPError` for refusals, timeouts and
unknown sessions; `MCPError(-32000, "Connection closed")` to callers when the session's transport crashed;
bare `httpx2` errors or exception groups from opening a session. Callers of the pool see only the
`McpError` family, each class telling whether a retry is safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx2
from mcp import MCPError

from omni_bridge.exceptions import McpConnectError, McpError, SessionExpired, ToolTimeout

__all__ = ["from_mcp_error", "from_open_failure", "mcp_errors"]

_REQUEST_TIMEOUT = -32001
_CONNECTION_CLOSED = -32000
_INVALID_REQUEST = -32600


def _http_status(data: Any) -> int | None:
    if isinstance(data, dict):
        status = data.get("status")
        if isinstance(status, int):
            return status
    return None


def from_mcp_error(exc: MCPError) -> McpError:
    """The omni-bridge error for an SDK `MCPError`."""
    status = _http_status(exc.data)
    message = exc.message or "MCP request failed"
    if exc.code == _REQUEST_TIMEOUT:
        return ToolTimeout(message, code=exc.code, status=status)
    # The SDK maps a 404 on a known session to -32600; servers word it "Session not found" or
    # "Session terminated". Either way the server refused the request before running it.
    if exc.code == _INVALID_REQUEST and (status == 404 or "session" in message.lower()):
        return SessionExpired(message, code=exc.code, status=status)
    if exc.code == _CONNECTION_CLOSED and "connection closed" in message.lower():
        return McpConnectError(message, code=exc.code, status=status)
    return McpError(message, code=exc.code, status=status)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def from_open_failure(exc: BaseException, *, where: str) -> McpError:
    """The error for a session that could not be opened (or whose transport died), from whatever the SDK raised.

    `where` names the endpoint (scheme, host, path) for the message; it never carries credentials.
    """
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, MCPError):
            return from_mcp_error(leaf)
    for leaf in leaves:
        if isinstance(leaf, httpx2.TimeoutException):
            return McpConnectError(f"timed out talking to {where}")
        if isinstance(leaf, httpx2.TransportError):
            return McpConnectError(f"cannot reach {where}: {type(leaf).__name__}")
    first = leaves[0] if leaves else exc
    return McpConnectError(f"MCP session to {where} failed: {type(first).__name__}")


@contextlib.contextmanager
def mcp_errors(where: str) -> Iterator[None]:
    """Translate SDK and transport errors raised inside the block; cancellation passes through untouched."""
    try:
        yield
    except MCPError as exc:
        raise from_mcp_error(exc) from exc
    except (httpx2.TransportError, BaseExceptionGroup) as exc:
        if isinstance(exc, BaseExceptionGroup) and exc.subgroup(lambda e: not isinstance(e, Exception)) is not None:
            raise  # a group holding cancellation or KeyboardInterrupt is not ours to reword
        raise from_open_failure(exc, where=where) from exc
