"""`SessionKey`: what decides what an MCP session may see, and so which callers may share it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from omni_bridge.tools._embed_tokens import EmbedPrincipal

__all__ = ["SessionKey"]


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Everything that decides what an MCP session may see: the server, the user and the pinned scope."""

    server: str
    """The MCP endpoint URL, e.g. `https://acme.omniapp.co/mcp/https`."""
    user_id: str
    """The Omni user id sent as `X-MCP-User-ID`. Never empty: there is no session without a user."""
    model_id: str | None = None
    topic_name: str | None = None
    query_all_views: bool = False
    principal: EmbedPrincipal | None = None
    """The end user and profile the session is for: whom an embed MCP token is minted for (`OMNI_AUTH=embed_token`,
    where it is required); the org key sends only `user_id`. Part of the key, so a user whose roles or attributes
    change gets a session (and a tool list) of their own."""

    def __post_init__(self) -> None:
        if not self.user_id.strip():
            raise ValueError("a session needs an Omni user id: there is no default user")
        if not self.server.startswith(("http://", "https://")):
            raise ValueError(f"server must be an http(s) URL of Omni's MCP endpoint, got {self.server[:80]!r}")

    @property
    def digest(self) -> str:
        """A short hash of the key, for logs and task names (the raw user id is not logged)."""
        principal = self.principal.digest if self.principal is not None else ""
        raw = "\x1f".join([self.server, self.user_id, self.model_id or "", self.topic_name or "", principal])
        return hashlib.sha256(f"{raw}\x1f{self.query_all_views}".encode()).hexdigest()[:12]

    @property
    def where(self) -> str:
        """The endpoint as error messages name it: scheme, host and path, never userinfo or query."""
        parts = urlsplit(self.server)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def __repr__(self) -> str:
        return f"SessionKey(#{self.digest}, model={self.model_id!r}, topic={self.topic_name!r})"
