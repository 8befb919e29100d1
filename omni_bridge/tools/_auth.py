"""How an MCP session acts as its end user at Omni: the two auth strategies behind one interface.

- `OrgKeyAuth`: the organization API key as the bearer plus `X-MCP-User-ID` (and `X-MCP-User-Required: true`),
  as Omni's embed guide shows. The key may act for anyone, so the user header is what keeps users apart.
- `EmbedTokenAuth`: a per-user embed MCP token minted from the embed secret (`EmbedTokenMinter`), sent as the
  bearer with *no* `X-MCP-User-ID`: the token is the user. It is put on each HTTP request by an `httpx2.Auth`
  flow, so a pooled session outlives its token: a request Omni answers 401 gets a freshly minted token and is
  sent once more. A 401 is the auth layer refusing before anything ran, so the retry cannot run a call twice;
  a second 401 in a row is returned as it is.

The strategy builds a session's identity headers and (for tokens) its `httpx2.Auth`; the scope headers
(model, topic, query-all-views) are the same for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Protocol

import httpx2
from pydantic import SecretStr

from omni_bridge.tools._embed_tokens import EmbedPrincipal, EmbedTokenError, EmbedTokenMinter
from omni_bridge.tools._headers import mcp_headers, scope_headers
from omni_bridge.tools._mcp_errors import RETRIED_ON_401, record_http_failure
from omni_bridge.tools._session_key import SessionKey
from omni_bridge.types import AuthStrategyName

__all__ = ["AuthStrategy", "EmbedTokenAuth", "OrgKeyAuth"]

log = logging.getLogger("omni_bridge.auth")


class AuthStrategy(Protocol):
    """What the session pool needs to open a session acting as `key`'s user."""

    name: AuthStrategyName

    def headers(self, key: SessionKey) -> dict[str, str]:
        """The fixed headers of `key`'s session."""
        ...

    def http_auth(self, key: SessionKey) -> httpx2.Auth | None:
        """The per-request auth flow of `key`'s session, if the strategy has one."""
        ...

    async def prepare(self, key: SessionKey) -> None:
        """Get ready to open `key`'s session (mint its token first), so a refusal is the open's own error."""
        ...

    async def aclose(self) -> None: ...


class OrgKeyAuth:
    """The organization key as the bearer, the user named by `X-MCP-User-ID`."""

    name: AuthStrategyName = "org_key"

    def __init__(self, api_key: SecretStr) -> None:
        if not api_key.get_secret_value():
            raise ValueError("api_key must not be empty")
        self._api_key = api_key

    def __repr__(self) -> str:
        return "<OrgKeyAuth>"

    def headers(self, key: SessionKey) -> dict[str, str]:
        return mcp_headers(
            self._api_key.get_secret_value(),
            user_id=key.user_id,
            model_id=key.model_id,
            topic_name=key.topic_name,
            query_all_views=key.query_all_views,
        )

    def http_auth(self, key: SessionKey) -> httpx2.Auth | None:
        return None

    async def prepare(self, key: SessionKey) -> None:
        return None

    async def aclose(self) -> None:
        return None


class EmbedTokenAuth:
    """A per-user embed MCP token as the bearer; no user header."""

    name: AuthStrategyName = "embed_token"

    def __init__(self, minter: EmbedTokenMinter) -> None:
        self.minter = minter

    def __repr__(self) -> str:
        return f"<EmbedTokenAuth {self.minter.token_url}>"

    def headers(self, key: SessionKey) -> dict[str, str]:
        _principal(key)
        return scope_headers(model_id=key.model_id, topic_name=key.topic_name, query_all_views=key.query_all_views)

    def http_auth(self, key: SessionKey) -> httpx2.Auth:
        return _BearerToken(self.minter, _principal(key))

    async def prepare(self, key: SessionKey) -> None:
        await self.minter.token(_principal(key))

    async def aclose(self) -> None:
        await self.minter.aclose()


def _principal(key: SessionKey) -> EmbedPrincipal:
    if key.principal is None:
        raise EmbedTokenError("OMNI_AUTH=embed_token needs the end user's external id in the session key (principal)")
    return key.principal


class _BearerToken(httpx2.Auth):
    """Puts the principal's current token on each request; on a 401, mints a new one and sends the request again."""

    def __init__(self, minter: EmbedTokenMinter, principal: EmbedPrincipal) -> None:
        self._minter = minter
        self._principal = principal

    def __repr__(self) -> str:
        return f"<embed token auth {self._principal.digest}>"

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self._current()
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            request.extensions[RETRIED_ON_401] = True  # this 401 is answered here, not the call's failure
        response = yield request
        if response.status_code != 401 or token is None:
            return
        self._minter.discard(self._principal, token)
        renewed = await self._current()
        if renewed is None:  # the 401 stands (the grant's refusal was logged): it is the call's failure after all
            request.extensions[RETRIED_ON_401] = False
            await record_http_failure(response)
            return
        log.info(
            "Omni refused the embed token of %s (401); minted a new one and sent the request again",
            self._principal.digest,
        )
        request.headers["Authorization"] = f"Bearer {renewed.get_secret_value()}"
        request.extensions[RETRIED_ON_401] = False  # a second 401 is the answer
        yield request

    async def _current(self) -> SecretStr | None:
        try:
            return await self._minter.token(self._principal)
        except EmbedTokenError as exc:
            # Raising here would reach the SDK as a broken transport; without a token the request gets Omni's
            # own 401, which the caller sees, and this line says why.
            log.warning("no embed MCP token for %s: %s", self._principal.digest, exc)
            return None
