"""Embed MCP access tokens the sandbox issued through its JWT-bearer grant (`/oauth/token`), and their checks.

A token *is* its embed user: the gate runs a request bearing one as that user, as Omni documents for tokens
minted with `createEmbedMcpToken`. Tokens are random and opaque; only their SHA-256 is kept, so the sandbox never
holds a usable copy. An expired, revoked or unknown token gets 401 with a `WWW-Authenticate` challenge
(RFC 6750 `error="invalid_token"`), so a client knows to mint again. `revoke_all` and `expire_all` are the knobs
tests use to make every issued token fail without waiting.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from omni_bridge.sandbox._errors import SandboxHTTPError

__all__ = ["TOKEN_PREFIX", "EmbedTokens"]

TOKEN_PREFIX = "omni-embed-mcp-"
"""Issued tokens start with this, so the gate tells them from API keys without a lookup."""


@dataclass(slots=True)
class _Issued:
    user_id: str
    expires_at: float
    revoked: bool = False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _challenge(description: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="omni", error="invalid_token", error_description="{description}"'}


class EmbedTokens:
    """Issued tokens by digest. Thread-safe: the REST grant and the MCP gate share it."""

    def __init__(self, *, lifetime_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, _Issued] = {}

    def issue(self, user_id: str) -> tuple[str, int]:
        """A new token acting as `user_id`, and its lifetime in whole seconds (at least 1)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._issued = {d: t for d, t in self._issued.items() if t.expires_at > now and not t.revoked}
            self._issued[_digest(token)] = _Issued(user_id, now + self.lifetime_seconds)
        return token, max(1, round(self.lifetime_seconds))

    def owner(self, token: str) -> str:
        """The user id a token acts as.

        Raises:
            SandboxHTTPError: 401 with a challenge when the token is unknown, revoked or expired.
        """
        with self._lock:
            issued = self._issued.get(_digest(token))
        if issued is None:
            raise SandboxHTTPError(401, "Unauthorized: invalid access token", headers=_challenge("invalid token"))
        if issued.revoked:
            raise SandboxHTTPError(401, "Unauthorized: access token revoked", headers=_challenge("token revoked"))
        if issued.expires_at <= self._clock():
            raise SandboxHTTPError(401, "Unauthorized: access token expired", headers=_challenge("token expired"))
        return issued.user_id

    def revoke_all(self) -> int:
        """Revoke every live token (how many); the next request bearing one gets 401."""
        with self._lock:
            live = [t for t in self._issued.values() if not t.revoked]
            for issued in live:
                issued.revoked = True
        return len(live)

    def expire_all(self) -> int:
        """Make every live token expired now (how many), as if its lifetime had passed."""
        now = self._clock()
        with self._lock:
            live = [t for t in self._issued.values() if not t.revoked and t.expires_at > now]
            for issued in live:
                issued.expires_at = now
        return len(live)

    def __repr__(self) -> str:
        return f"<EmbedTokens issued={len(self._issued)} lifetime={self.lifetime_seconds}s>"
