"""The one place where `mcp` SDK and `httpx2` errors become omni-bridge errors.

The SDK reports trouble in several shapes: a JSON-RPC `MCPError` for refusals, timeouts and
unknown sessions; `MCPError(-32000, "Connection closed")` to callers when the session's transport crashed;
bare `httpx2` errors or exception groups from opening a session. Callers of the pool see only the
`McpError` family, each class telling whether a retry is safe.

The SDK keeps a JSON-RPC error body only when it parses as a full JSON-RPC message, and drops the HTTP
status: a 401, a 500 and a TypeScript server's 400 "No valid session ID provided" (which omits `id`) all read
"Server returned an error response". So each session's `httpx2` client carries `record_http_failure` as a
response hook: it notes the status, whether the request carried a session id and a short redacted excerpt
of the body, in a list that `mcp_errors` (or `recording_http_failures`) puts in the calling context. The SDK
sends every request's POST inside its caller's context, so a failure lands with the call that caused it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httpx2

from omni_bridge.exceptions import McpConnectError, McpError, SessionExpired, ToolTimeout

if TYPE_CHECKING:  # `mcp` is imported when a session opens, not to start: it takes most of a second
    from mcp import MCPError

__all__ = [
    "RETRIED_ON_401",
    "HttpFailure",
    "from_mcp_error",
    "from_open_failure",
    "mcp_errors",
    "record_http_failure",
    "recording_http_failures",
]

_REQUEST_TIMEOUT = -32001
_CONNECTION_CLOSED = -32000
_INVALID_REQUEST = -32600
_EXCERPT_CHARS = 200
_READ_LIMIT = 4096  # bytes of a non-JSON error body read for the excerpt
# What the SDK says when it could not use the body: the server's own words, when we have them, say more.
_SDK_STAND_INS = frozenset({"Server returned an error response", "Not Found", "Session terminated"})
RETRIED_ON_401 = "omni_bridge.retried_on_401"
"""A request extension an auth flow sets when it will answer a 401 by sending the request again (a new token):
such a 401 is not the call's failure, so it is not recorded."""
_SECRET_HEADERS = ("authorization", "x-api-key", "cookie", "proxy-authorization")
_MODERN_REFUSALS = re.compile(r"session|initiali[sz]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """An HTTP error answer to one JSON-RPC request, as `record_http_failure` saw it."""

    status: int
    had_session: bool
    """The request carried `Mcp-Session-Id`: a refusal naming the session means the session is gone."""
    excerpt: str
    """At most 200 characters of the body, whitespace folded, the request's credentials blanked out."""
    rpc_code: int | None = None
    rpc_message: str | None = None
    """The JSON-RPC error in the body, even when the SDK could not parse it (e.g. no `id`)."""


_FAILURES: contextvars.ContextVar[list[HttpFailure] | None] = contextvars.ContextVar(
    "omni_bridge_mcp_http_failures", default=None
)


@contextlib.contextmanager
def recording_http_failures() -> Iterator[list[HttpFailure]]:
    """Collect the HTTP failures of the requests sent from this context while the block runs."""
    seen: list[HttpFailure] = []
    token = _FAILURES.set(seen)
    try:
        yield seen
    finally:
        _FAILURES.reset(token)


async def record_http_failure(response: httpx2.Response) -> None:
    """`httpx2` response hook: note an HTTP error answer to a JSON-RPC request for the caller's error."""
    seen = _FAILURES.get()
    request = response.request
    if seen is None or response.status_code < 400 or request.method != "POST":
        return
    if response.status_code == 401 and request.extensions.get(RETRIED_ON_401):
        return
    try:
        sent = json.loads(request.content)
    except ValueError:
        return
    if not (isinstance(sent, dict) and "id" in sent and "method" in sent):
        return  # notifications and responses: no caller waits on them
    if response.headers.get("content-type", "").lower().startswith("application/json"):
        body = await response.aread()  # the SDK reads a JSON body anyway; aread() caches it for the SDK
    else:
        body = await _read_prefix(response)
    text = _redact(body.decode("utf-8", "replace"), request)
    code, message = _rpc_error(text)
    seen.append(
        HttpFailure(
            status=response.status_code,
            had_session="mcp-session-id" in request.headers,
            excerpt=_excerpt(text),
            rpc_code=code,
            rpc_message=message,
        )
    )


async def _read_prefix(response: httpx2.Response) -> bytes:
    """The first few KiB of a body the SDK will not read (a proxy's HTML page may be large)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _READ_LIMIT:
            break
    return b"".join(chunks)[:_READ_LIMIT]


def _redact(text: str, request: httpx2.Request) -> str:
    """Blank out every credential the request carried, should the server echo one back."""
    for name in _SECRET_HEADERS:
        for value in request.headers.get_list(name):
            for secret in (value, value.partition(" ")[2]):  # the whole value first, then a scheme's token
                if len(secret) >= 4:
                    text = text.replace(secret, "[redacted]")
    return text


def _excerpt(text: str) -> str:
    folded = " ".join(text.split())
    return folded if len(folded) <= _EXCERPT_CHARS else folded[: _EXCERPT_CHARS - 1] + "…"


def _rpc_error(text: str) -> tuple[int | None, str | None]:
    try:
        body = json.loads(text)
    except ValueError:
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return (code if isinstance(code, int) else None), error["message"]
    return None, None


def _is_expiry(failure: HttpFailure) -> bool:
    """A request on a session refused with 404 (any body), or with 400 naming the session (the TS SDK's form)."""
    if not failure.had_session:
        return False
    words = failure.rpc_message if failure.rpc_message is not None else failure.excerpt
    return failure.status == 404 or (failure.status == 400 and "session" in words.lower())


def _http_status(data: Any) -> int | None:
    if isinstance(data, dict):
        status = data.get("status")
        if isinstance(status, int):
            return status
    return None


def from_mcp_error(
    exc: MCPError, failure: HttpFailure | None = None, *, where: str = "the MCP server", modern: bool = False
) -> McpError:
    """The omni-bridge error for an SDK `MCPError`.

    `failure` is the HTTP error answer behind it, when one was recorded; `modern` says the request was sent
    as protocol 2026-07-28 without negotiating it (`OMNI_MCP_PROTOCOL=modern`).
    """
    status = failure.status if failure is not None else _http_status(exc.data)
    code, message = exc.code, exc.message or "MCP request failed"
    if failure is not None and failure.rpc_message is not None and message in _SDK_STAND_INS:
        code, message = failure.rpc_code if failure.rpc_code is not None else code, failure.rpc_message
    if failure is not None and _is_expiry(failure):
        return SessionExpired(message, code=code, status=status)
    if failure is not None and modern and failure.status in (400, 404) and _MODERN_REFUSALS.search(message):
        # A pre-2026 server asks for the handshake a pinned 2026-07-28 client never sends.
        return McpError(
            f"{where} does not speak MCP 2026-07-28, which OMNI_MCP_PROTOCOL=modern requires "
            f"(it answered {status}: {message}); use OMNI_MCP_PROTOCOL=auto or legacy",
            code=code,
            status=status,
        )
    if failure is not None and failure.rpc_message is None:
        # Not JSON-RPC (a proxy, a gateway, an auth layer): the status and the body are all there is.
        reason = _reason(failure.status)
        detail = f": {failure.excerpt}" if failure.excerpt else ""
        return McpError(f"{where} answered HTTP {failure.status} {reason}{detail}", code=code, status=status)
    if exc.code == _REQUEST_TIMEOUT:
        return ToolTimeout(message, code=code, status=status)
    # The SDK maps a 404 on a known session to -32600; servers word it "Session not found" or
    # "Session terminated". Either way the server refused the request before running it.
    if code == _INVALID_REQUEST and (status == 404 or "session" in message.lower()):
        return SessionExpired(message, code=code, status=status)
    if code == _CONNECTION_CLOSED and "connection closed" in message.lower():
        return McpConnectError(message, code=code, status=status)
    return McpError(message, code=code, status=status)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def from_open_failure(
    exc: BaseException, *, where: str, failure: HttpFailure | None = None, modern: bool = False
) -> McpError:
    """The error for a session that could not be opened (or whose transport died), from whatever the SDK raised.

    `where` names the endpoint (scheme, host, path) for the message; it never carries credentials.
    """
    from mcp import MCPError

    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, MCPError):
            return from_mcp_error(leaf, failure, where=where, modern=modern)
    for leaf in leaves:
        if isinstance(leaf, httpx2.TimeoutException):
            return McpConnectError(f"timed out talking to {where}")
        if isinstance(leaf, httpx2.TransportError):
            return McpConnectError(f"cannot reach {where}: {type(leaf).__name__}")
    first = leaves[0] if leaves else exc
    return McpConnectError(f"MCP session to {where} failed: {type(first).__name__}")


@contextlib.contextmanager
def mcp_errors(where: str, *, modern: bool = False) -> Iterator[None]:
    """Translate SDK and transport errors raised inside the block; cancellation passes through untouched.

    The requests sent inside the block have their HTTP failures recorded, so the error keeps the status.
    """
    from mcp import MCPError

    with recording_http_failures() as seen:
        try:
            yield
        except MCPError as exc:
            raise from_mcp_error(exc, seen[-1] if seen else None, where=where, modern=modern) from exc
        except (httpx2.TransportError, BaseExceptionGroup) as exc:
            if isinstance(exc, BaseExceptionGroup) and exc.subgroup(lambda e: not isinstance(e, Exception)) is not None:
                raise  # a group holding cancellation or KeyboardInterrupt is not ours to reword
            failure = seen[-1] if seen else None
            raise from_open_failure(exc, where=where, failure=failure, modern=modern) from exc
