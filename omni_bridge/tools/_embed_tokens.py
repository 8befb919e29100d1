"""Per-user embed MCP tokens: who a token is minted for (`EmbedPrincipal`), and the minter that caches them.

Omni's path for "your own agent" (its `createEmbedMcpToken`): the backend signs a short-lived JWT with the embed
secret, naming the embed user (external id, name, groups, user attributes, connection and model roles), and
exchanges it at the instance's `/oauth/token` through the RFC 7523 JWT-bearer grant for an access token that *is*
that user. The token lives for the embed session length and has no refresh token, so `EmbedTokenMinter` keeps one
per principal until shortly before it expires, mints each principal's token in a single flight, and forgets a
token Omni refused (401) so the next request mints a fresh one. The claim names are a guess (Omni does not publish
them; see the sandbox's `docs/embed-mcp-tokens.md`).

PyJWT signs the assertion: a well-kept library beats hand-rolled base64 and HMAC for a credential. Tokens and the
secret are `SecretStr` here, so no repr, log line or error can show them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import jwt
from pydantic import SecretStr

from omni_bridge._bounded import BoundedMap
from omni_bridge.exceptions import McpError

__all__ = ["JWT_BEARER", "EmbedPrincipal", "EmbedTokenError", "EmbedTokenMinter"]

log = logging.getLogger("omni_bridge.auth")

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ASSERTION_SECONDS = 300
"""How long a signed assertion is valid: long enough for one token request, short enough to be useless later."""
_UNSTATED_LIFETIME = 300.0
"""How long a token is kept when the grant does not say (`expires_in` missing): re-minted rather than trusted."""
_MAX_MARGIN = 60.0


class EmbedTokenError(McpError):
    """The token grant refused to mint a token (a wrong embed secret, a bad claim) or could not be reached."""


@dataclass(frozen=True, slots=True)
class EmbedPrincipal:
    """The end user a token is minted for: its external id, name and the optional claims, fixed and hashable.

    Two principals are the same user with the same profile exactly when they are equal, so a changed role or
    attribute gets a token (and an MCP session) of its own.
    """

    external_id: str
    name: str | None = None
    """The display name; `None` leaves Omni's as it is (a user Omni does not know yet needs one)."""
    optional_json: str = "{}"
    """The optional claims (`groups`, `userAttributes`, `connectionRoles`, `modelRoles`, `entity`, `email`) as
    canonical JSON; a claim left out leaves what Omni holds for the user as it is."""

    @classmethod
    def of(
        cls,
        external_id: str,
        *,
        name: str | None = None,
        groups: tuple[str, ...] | None = None,
        user_attributes: Mapping[str, Any] | None = None,
        connection_roles: Mapping[str, str] | None = None,
        model_roles: Mapping[str, str] | None = None,
        entity: str | None = None,
        email: str | None = None,
    ) -> EmbedPrincipal:
        if not external_id.strip():
            raise ValueError("an embed token needs the end user's external id: there is no default user")
        optional: dict[str, Any] = {
            "groups": sorted(groups) if groups is not None else None,
            "userAttributes": dict(user_attributes) if user_attributes is not None else None,
            "connectionRoles": dict(connection_roles) if connection_roles is not None else None,
            "modelRoles": dict(model_roles) if model_roles is not None else None,
            "entity": entity,
            "email": email,
        }
        given = {k: v for k, v in optional.items() if v is not None}
        return cls(external_id, name, json.dumps(given, sort_keys=True, default=str))

    def claims(self) -> dict[str, Any]:
        """The identity claims of the assertion."""
        named = {"name": self.name} if self.name is not None else {}
        return {"sub": self.external_id, **named, **json.loads(self.optional_json)}

    @property
    def digest(self) -> str:
        raw = f"{self.external_id}\x1f{self.name or ''}\x1f{self.optional_json}"
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def __repr__(self) -> str:  # external ids and attributes are not logged in clear
        return f"EmbedPrincipal(#{self.digest})"


@dataclass(frozen=True, slots=True)
class _Token:
    value: SecretStr
    renew_at: float


class EmbedTokenMinter:
    """Mints, caches and renews embed MCP tokens, one per `EmbedPrincipal`; safe to share between tasks of a loop."""

    def __init__(
        self,
        token_url: str,
        embed_secret: SecretStr,
        *,
        transport: httpx2.AsyncBaseTransport,
        timeout: float = 30.0,
        issuer: str = "omni-bridge",
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not embed_secret.get_secret_value():
            raise ValueError("the embed secret must not be empty")
        self.token_url = token_url
        self._secret = embed_secret
        self._issuer = issuer
        self._clock = clock
        self._wall_clock = wall_clock
        self._http = httpx2.AsyncClient(transport=transport, timeout=timeout)
        self._tokens: BoundedMap[EmbedPrincipal, _Token] = BoundedMap(max_entries, clock=clock)
        self._flights: dict[EmbedPrincipal, asyncio.Task[_Token]] = {}
        self.minted_total = 0

    def __repr__(self) -> str:
        return f"<EmbedTokenMinter {self.token_url} cached={len(self._tokens)} minted={self.minted_total}>"

    async def aclose(self) -> None:
        """Cancel mints in flight. The HTTP client is not closed: it shares a transport its owner closes."""
        for flight in list(self._flights.values()):
            flight.cancel()

    async def token(self, principal: EmbedPrincipal) -> SecretStr:
        """`principal`'s token: the cached one unless it is due for renewal, else one minted now (single flight).

        Raises:
            EmbedTokenError: the grant refused or could not be reached.
        """
        cached = self._tokens.get(principal)
        if cached is not None and cached.renew_at > self._clock():
            return cached.value
        flight = self._flights.get(principal)
        if flight is None:
            flight = asyncio.create_task(self._mint(principal), name=f"omni-bridge mint {principal.digest}")
            self._flights[principal] = flight
            flight.add_done_callback(lambda _: self._flights.pop(principal, None))
        return (await asyncio.shield(flight)).value

    def discard(self, principal: EmbedPrincipal, refused: SecretStr) -> None:
        """Forget `refused` (Omni answered 401 to it), unless another request already replaced it."""
        cached = self._tokens.get(principal)
        if cached is not None and cached.value.get_secret_value() == refused.get_secret_value():
            self._tokens.pop(principal)

    async def _mint(self, principal: EmbedPrincipal) -> _Token:
        now = int(self._wall_clock())
        claims = {
            "iss": self._issuer,
            "aud": self.token_url,
            "iat": now,
            "exp": now + _ASSERTION_SECONDS,
            "jti": uuid.uuid4().hex,
            **principal.claims(),
        }
        assertion = jwt.encode(claims, self._secret.get_secret_value(), algorithm="HS256")
        started = self._clock()
        try:
            response = await self._http.post(self.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion})
        except httpx2.TransportError as exc:
            reason = type(exc).__name__
            raise EmbedTokenError(f"cannot reach the embed token grant at {self.token_url}: {reason}") from None
        body = _json(response)
        if response.status_code != 200:
            error = body.get("error") or f"HTTP {response.status_code}"
            description = body.get("error_description") or ""
            raise EmbedTokenError(
                f"the embed token grant refused ({error}{': ' + description if description else ''})",
                status=response.status_code,
            )
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise EmbedTokenError("the embed token grant answered without an access_token", status=200)
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else _UNSTATED_LIFETIME
        renew_at = started + seconds - min(_MAX_MARGIN, seconds / 10)
        token = _Token(SecretStr(value), renew_at)
        self._tokens.put(principal, token, ttl=seconds)
        self.minted_total += 1
        log.debug("minted an embed MCP token for %s (lives %.0f s)", principal.digest, seconds)
        return token


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
