"""The exceptions omni-bridge raises, in one tree.

```
OmniBridgeError
├── ConfigError            a setting is missing or wrong (names the variable and the fix)
└── OmniError              Omni (or the sandbox) answered with an error
    └── OmniHTTPError      a REST call failed: carries Omni's `detail` and HTTP `status`
```

Messages never contain secrets: API keys and signing secrets are kept out of every `str()` and `repr()`.
"""

from __future__ import annotations

__all__ = ["ConfigError", "OmniBridgeError", "OmniError", "OmniHTTPError"]


class OmniBridgeError(Exception):
    """Base class of every error omni-bridge raises on purpose."""


class ConfigError(OmniBridgeError):
    """A setting is missing or has a wrong value.

    Raised at start-up, before any network call, with the environment variable's name in the message.
    """


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
