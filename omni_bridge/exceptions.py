"""The exceptions omni-bridge raises, in one tree.

```
OmniBridgeError
├── ConfigError                a setting is missing or wrong (names the variable and the fix)
├── IdentityError              an end user cannot be resolved to an Omni user, or a conversation is asked
│                              for under an identity other than the one it is bound to
├── WebhookVerificationError   a webhook's signature or timestamp does not check out
└── OmniError                  Omni (or the sandbox) refused or failed a request
    ├── OmniHTTPError          a REST call failed: carries Omni's `detail` and HTTP `status`
    └── McpError               an MCP request failed: carries the JSON-RPC `code`
        ├── SessionExpired     Omni no longer knows the MCP session (404, or 400 naming the session)
        ├── McpConnectError    the connection failed; a call in flight may or may not have run
        └── ToolTimeout        a tool call passed its deadline (Omni was asked to cancel it)
```

Each class names its kind in the one error vocabulary, `ErrorType`, which every consumer shares: the engines'
`ErrorEvent.error_type`, a response's `error.type` in the HTTP API, the console's `errors`. Its
`error_type` is what a run that stops on it reports, and `retryable` whether asking again later may succeed.

Messages never contain secrets: API keys and signing secrets are kept out of every `str()` and `repr()`.
Every error pickles (`__reduce__`), so it survives a process boundary.
"""

from __future__ import annotations

from typing import ClassVar, Literal, NewType, TypeGuard, get_args

__all__ = [
    "ERROR_TYPES",
    "ConfigError",
    "ErrorType",
    "ForeignErrorCode",
    "IdentityError",
    "McpConnectError",
    "McpError",
    "OmniBridgeError",
    "OmniError",
    "OmniHTTPError",
    "SessionExpired",
    "ToolTimeout",
    "WebhookVerificationError",
    "is_error_type",
]

ErrorType = Literal[
    # Raised errors (each class's `error_type`) and the bridge's own reasons for ending an answer `errored`.
    "error",
    "configuration_error",
    "identity_error",
    "omni_unavailable",
    "timeout",
    "max_turns",
    "stream_interrupted",
    "connection_error",
    "conversation_busy",
    "job_failed",
    "job_denied",
    # Omni refused a REST call of the `omni` engine: by HTTP status (else `omni_server_error` / `omni_error`).
    "bad_request",
    "authentication_error",
    "permission_error",
    "not_found",
    "rate_limited",
    "omni_server_error",
    "omni_error",
    # The Messages API's own `error.type`s (its 400 to 529 answers, and `event: error` frames mid-stream).
    "invalid_request_error",
    "billing_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
    # A response the service ended itself.
    "internal_error",
    "worker_shutdown",
    "worker_lost",
    "canceled",
    # The HTTP API's refusals of a request (`error.type` of the `/v1` envelope).
    "invalid_request",
    "invalid_user",
    "missing_user",
    "engine_unavailable",
    "unauthorized",
    "forbidden",
    "profile_write_forbidden",
    "invalid_profile",
    "unknown_user",
    "method_not_allowed",
    "conflict",
    "response_active",
    "payload_too_large",
    "unsupported_media_type",
    "unavailable",
]
"""Every machine-readable kind of error omni-bridge reports, in events, responses, the console and the HTTP API."""

ERROR_TYPES: frozenset[str] = frozenset(get_args(ErrorType))
"""`ErrorType`'s values, for checks at run time."""

ForeignErrorCode = NewType("ForeignErrorCode", str)
"""A kind of error named by another system and passed on as it came: Omni's code of a failed AI job (e.g.
`QUERY_GENERATION_ERROR`), or a Messages API `error.type` newer than `ErrorType`. Wrapping a string in it says
that it is not one of the bridge's own kinds (which the type checker holds to `ErrorType`)."""


def is_error_type(value: str) -> TypeGuard[ErrorType]:
    """Whether `value` is one of the bridge's own kinds (`ErrorType`)."""
    return value in ERROR_TYPES


class OmniBridgeError(Exception):
    """Base class of every error omni-bridge raises on purpose."""

    error_type: ClassVar[ErrorType] = "error"
    """The kind a run that stops on this error reports."""
    retryable: ClassVar[bool] = False
    """Whether asking again later may succeed."""


class ConfigError(OmniBridgeError):
    """A setting is missing or has a wrong value.

    Raised at start-up, before any network call, with the environment variable's name in the message.
    """

    error_type = "configuration_error"


class IdentityError(OmniBridgeError):
    """An end user could not be mapped to an Omni user, or a conversation is bound to another identity."""

    error_type = "identity_error"


class WebhookVerificationError(OmniBridgeError):
    """A webhook failed verification: missing headers, a bad signature, or a timestamp outside the tolerance."""


class OmniError(OmniBridgeError):
    """Omni, or the sandbox standing in for it, refused or failed a request."""

    error_type: ClassVar[ErrorType] = "omni_unavailable"
    retryable = True


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
