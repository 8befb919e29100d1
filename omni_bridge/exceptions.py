"""The exceptions omni-bridge raises, in one tree.

```
OmniBridgeError
├── ConfigError                a setting is missing or wrong (names the variable and the fix)
├── IdentityError              an end user cannot be resolved to an Omni user, or a conversation is asked
│                              for under an identity other than the one it is bound to
├── WebhookVerificationError   a webhook's signature or timestamp does not check out
├── OmniError                  Omni (or the sandbox) refused or failed a request
│   ├── OmniHTTPError          a REST call failed: carries Omni's `detail` and HTTP `status`
│   └── McpError               an MCP request failed: carries the JSON-RPC `code`
│       ├── SessionExpired     Omni no longer knows the MCP session (404, or 400 naming the session)
│       ├── McpConnectError    the connection failed; a call in flight may or may not have run
│       └── ToolTimeout        a tool call passed its deadline (Omni was asked to cancel it)
├── ModelAPIError              the Messages API (Claude) failed after the SDK's retries
└── RunCancelled               an agent run was cancelled; the transcript was left valid
```

Messages never contain secrets: API keys and signing secrets are kept out of every `str()` and `repr()`.
Every error pickles (`__reduce__`), so it survives a process boundary.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "IdentityError",
    "McpConnectError",
    "McpError",
    "ModelAPIError",
    "OmniBridgeError",
    "OmniError",
    "OmniHTTPError",
    "RunCancelled",
    "SessionExpired",
    "ToolTimeout",
    "WebhookVerificationError",
]


class OmniBridgeError(Exception):
    """Base class of every error omni-bridge raises on purpose."""


class ConfigError(OmniBridgeError):
    """A setting is missing or has a wrong value.

    Raised at start-up, before any network call, with the environment variable's name in the message.
    """


class IdentityError(OmniBridgeError):
    """An end user could not be mapped to an Omni user, or a conversation is bound to another identity."""


class WebhookVerificationError(OmniBridgeError):
    """A webhook failed verification: missing headers, a bad signature, or a timestamp outside the tolerance."""


class OmniError(OmniBridgeError):
    """Omni, or the sandbox standing in for it, refused or failed a request."""


class OmniHTTPError(OmniError):
    """A REST call to Omni answered with an error status.

    Attributes:
        status: the HTTP status code.
        detail: Omni's `detail` message (from its `{detail, status}` error body), or the raw body text.
    """

    def __init__(self, status: int, detail: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"Omni answered {status}{where}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_http_error, (self.status, self.detail, self.method, self.path))


def _rebuild_http_error(status: int, detail: str, method: str, path: str) -> OmniHTTPError:
    return OmniHTTPError(status, detail, method=method, path=path)


class McpError(OmniError):
    """An MCP request to Omni failed.

    Attributes:
        code: the JSON-RPC error code (e.g. -32600 for an unknown session, -32001 for a timeout).
        message: what the server (or the transport) said.
        status: the HTTP status behind it, when the server reported one. An answer that is not JSON-RPC
            (a gateway's page, an auth layer's 401) carries the status and a short, redacted excerpt of the
            body in `message` instead of the SDK's "Server returned an error response".
    """

    def __init__(self, message: str, *, code: int = -32603, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_mcp_error, (type(self), self.message, self.code, self.status))


def _rebuild_mcp_error(cls: type[McpError], message: str, code: int, status: int | None) -> McpError:
    return cls(message, code=code, status=status)


class SessionExpired(McpError):
    """Omni no longer knows the session: the request was refused before it ran, so it is safe to retry.

    Servers word it differently: the Python SDK answers 404 `Session not found`, the TypeScript SDK 400
    "No valid session ID provided"; either, on a request that carried a session id, means this.
    """


class McpConnectError(McpError):
    """The MCP connection failed (refused, reset, or the session's transport crashed)."""


class ToolTimeout(McpError):
    """A tool call did not answer within its deadline; Omni was told to cancel it."""


class ModelAPIError(OmniBridgeError):
    """The Messages API failed after the SDK's retries.

    Attributes:
        status: the HTTP status (None for a connection failure).
        error_type: the API's error type (`overloaded_error`, `rate_limit_error`, …), when known.
    """

    def __init__(self, message: str, *, status: int | None = None, error_type: str | None = None) -> None:
        self.status = status
        self.error_type = error_type
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_model_error, (str(self), self.status, self.error_type))


def _rebuild_model_error(message: str, status: int | None, error_type: str | None) -> ModelAPIError:
    return ModelAPIError(message, status=status, error_type=error_type)


class RunCancelled(OmniBridgeError):
    """An agent run was cancelled before it finished; what it had written is kept and valid."""
