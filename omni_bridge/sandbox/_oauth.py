"""The sandbox's embed MCP token grant: `POST /oauth/token`, an RFC 7523 JWT-bearer grant.

Omni documents the flow (`createEmbedMcpToken` signs a short-lived JWT with the embed secret and posts it to the
instance's `/oauth/token`; Omni upserts the embed user, starts an embed session and returns an access token that
acts as that user) but not the claims nor the exact fields, so both are the sandbox's guess, written in
`docs/embed-mcp-tokens.md`:

- request: `application/x-www-form-urlencoded`, `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and
  `assertion=<JWT>` (RFC 7523 §2.1); no client authentication;
- the JWT: HS256 with the embed secret; `iss`, `sub` (the external id), `aud` (this token endpoint's URL, or the
  instance's base URL), `iat`, `exp` required; `name`, `groups`, `userAttributes`, `connectionRoles`,
  `modelRoles`, `entity`, `email` optional, and a claim left out leaves what the user has as it is (a new user
  needs `name`, as a signed embed URL does);
- response: `{access_token, token_type: "Bearer", expires_in}` (RFC 6749 §5.1), no refresh token; refusals are
  RFC 6749 §5.2 `{error, error_description}` with 400 (`invalid_request`, `unsupported_grant_type`,
  `invalid_grant`).

PyJWT checks signature, expiry and required claims, so no JWT parsing is written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.sandbox._directory import SandboxUser
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._gate import check_faults
from omni_bridge.sandbox._roles import least_role, model_access

if TYPE_CHECKING:  # the sandbox imports this module to build its routes
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["JWT_BEARER", "TOKEN_PATH", "token_grant"]

TOKEN_PATH = "/oauth/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_MAX_BODY = 64 * 1024
_REQUIRED = ["iss", "sub", "aud", "iat", "exp"]

AttributeValue = str | list[str] | int | float | bool | None


class EmbedClaims(BaseModel):
    """The identity claims of the assertion, as a signed embed URL names them."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    sub: str = Field(min_length=1, max_length=255)
    name: str | None = Field(None, min_length=1, max_length=255)
    groups: list[str] | None = Field(None, max_length=100)
    userAttributes: dict[str, AttributeValue] | None = None
    connectionRoles: dict[str, str] | None = None
    modelRoles: dict[str, str] | None = None
    entity: str | None = Field(None, max_length=64)
    email: str | None = Field(None, max_length=320)


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _refusal(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


async def token_grant(sandbox: Sandbox, request: Request) -> Response:
    """Exchange a signed assertion for an access token acting as its embed user (upserted first)."""
    sandbox.stats.count("oauth.token_requests")
    failure = await check_faults(sandbox.faults)
    if failure is not None:
        return JSONResponse({"error": "temporarily_unavailable"}, status_code=failure.status, headers=failure.headers)
    try:
        claims = _verified_claims(sandbox, request, await request.body())
        user = _upsert(sandbox, claims)
    except _GrantError as exc:
        sandbox.stats.count(f"oauth.refused.{exc.error}")
        return _refusal(exc.error, exc.description)
    except SandboxHTTPError as exc:  # an unknown role
        sandbox.stats.count("oauth.refused.invalid_grant")
        return _refusal("invalid_grant", exc.detail)
    token, expires_in = sandbox.directory.tokens.issue(user.id)
    sandbox.stats.count("oauth.tokens_issued")
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},  # RFC 6749 §5.1
    )


def _verified_claims(sandbox: Sandbox, request: Request, body: bytes) -> EmbedClaims:
    import jwt  # here, not at the top: the sandbox starts before the console's prompt; few runs mint

    if len(body) > _MAX_BODY:
        raise _GrantError("invalid_request", "the request body is too large")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise _GrantError("invalid_request", "the body must be application/x-www-form-urlencoded")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if form.get("grant_type") != JWT_BEARER:
        raise _GrantError("unsupported_grant_type", f"grant_type must be {JWT_BEARER}")
    assertion = form.get("assertion")
    if not assertion:
        raise _GrantError("invalid_request", "assertion is required (a JWT signed with the embed secret)")
    endpoint = str(request.url.replace(query=""))
    audiences = [endpoint, endpoint.removesuffix(TOKEN_PATH)]
    try:
        payload: dict[str, Any] = jwt.decode(
            assertion,
            sandbox.config.embed_secret,
            algorithms=["HS256"],
            audience=audiences,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise _GrantError("invalid_grant", "the assertion has expired (exp)") from None
    except jwt.InvalidSignatureError:
        raise _GrantError("invalid_grant", "the assertion's signature does not match the embed secret") from None
    except jwt.InvalidAudienceError:
        raise _GrantError("invalid_grant", f"the assertion's aud must be {endpoint}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _GrantError("invalid_grant", f"the assertion lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        raise _GrantError("invalid_grant", f"the assertion is not a valid JWT: {type(exc).__name__}") from None
    try:
        return EmbedClaims.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise _GrantError("invalid_grant", f"bad claims: {problems}") from None


def _upsert(sandbox: Sandbox, claims: EmbedClaims) -> SandboxUser:
    """Create or update the embed user; a claim left out keeps what the user already has."""
    old = sandbox.directory.embed_user(claims.sub)
    model_roles, hidden_models = model_access(claims.modelRoles)
    name = claims.name or (old.name if old else None)
    if name is None:
        raise _GrantError("invalid_grant", "the assertion lacks the 'name' claim, which a new embed user needs")
    if claims.userAttributes is not None:
        attributes = {k: v if isinstance(v, list) or v is None else str(v) for k, v in claims.userAttributes.items()}
    else:
        attributes = dict(old.attributes) if old else {}
    return sandbox.directory.upsert_embed(
        claims.sub,
        name,
        groups=claims.groups if claims.groups is not None else (old.groups if old else ()),
        attributes=attributes,
        entity=claims.entity if claims.entity is not None else (old.entity if old else None),
        email=claims.email if claims.email is not None else (old.email if old else None),
        role=least_role(claims.connectionRoles, model_roles),
        hidden_models=hidden_models,
    )
