"""Who is calling: the backend (a bearer service key names its tenant) and the end user it acts for.

Service keys come from `BRIDGE_SERVICE_KEYS` as `name:key` pairs; the name is the tenant, so two backends
sharing a service never see each other's threads. A presented key is compared with every configured key in
constant time (`hmac.compare_digest`), and all of them are always compared, so timing tells nothing about
which key came close. The end user is the `X-Bridge-User` header: the backend's own id for its user, which
`_tenants` maps to the Omni user it acts as (a namespace per tenant, unless configured otherwise).

With no keys configured the service may still run for development, but only where nobody else can reach
it (listening on loopback) or where there is nothing to protect (the embedded sandbox): it then makes a
random key at start. Keys never appear in logs, errors or reprs.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

from omni_bridge.exceptions import ConfigError
from omni_bridge.server._envelope import ApiError
from omni_bridge.stores import Owner

__all__ = [
    "DEV_TENANT",
    "MAX_USER_ID_LENGTH",
    "MIN_KEY_LENGTH",
    "USER_HEADER",
    "ServiceKeys",
    "check_service_key",
    "is_loopback",
    "owner_from_request",
    "parse_service_keys",
    "tenant_from_request",
    "user_from_request",
]

USER_HEADER = "X-Bridge-User"
MAX_USER_ID_LENGTH = 256
DEV_TENANT = "dev"
"""The tenant of the generated development key."""
MIN_KEY_LENGTH = 16
"""The shortest service key accepted, by `serve` and by the HTTP MCP proxy alike."""
_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="omni-bridge"'}


@dataclass(frozen=True)
class _Key:
    tenant: str
    secret: bytes = field(repr=False)


class ServiceKeys:
    """The accepted service keys and the tenant each one names."""

    def __init__(self, pairs: list[tuple[str, str]], *, generated: bool = False) -> None:
        self._keys = tuple(_Key(tenant, key.encode()) for tenant, key in pairs)
        self.generated = generated
        """True when the key was made at start because none was configured (development only)."""

    def __repr__(self) -> str:
        tenants = sorted({key.tenant for key in self._keys})
        return f"<ServiceKeys tenants={tenants!r}{' generated' if self.generated else ''}>"

    @property
    def tenants(self) -> list[str]:
        return sorted({key.tenant for key in self._keys})

    @classmethod
    def parse(cls, value: str) -> ServiceKeys:
        """Read `name:key,name2:key2` (see `parse_service_keys` for the errors)."""
        return cls(parse_service_keys(value))

    @classmethod
    def development(cls) -> tuple[ServiceKeys, str]:
        """A fresh random key for tenant `dev`, and the key (for the one place it may be shown)."""
        key = secrets.token_urlsafe(32)
        return cls([(DEV_TENANT, key)], generated=True), key

    def tenant_of(self, presented: str) -> str | None:
        """The tenant whose key this is, or `None`; every key is compared, each in constant time."""
        candidate = presented.encode()
        found: str | None = None
        for key in self._keys:
            if hmac.compare_digest(candidate, key.secret) and found is None:
                found = key.tenant
        return found


def parse_service_keys(value: str) -> list[tuple[str, str]]:
    """The `(name, key)` pairs of `BRIDGE_SERVICE_KEYS` (`name:key,name2:key2`), for `serve` and the MCP proxy.

    Raises:
        ConfigError: an entry is not `name:key`, a key breaks `check_service_key`, or one key is given for two
            names. The message names `BRIDGE_SERVICE_KEYS` and never a key.
    """
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for number, entry in enumerate((e.strip() for e in value.split(",")), start=1):
        if not entry:
            continue
        tenant, colon, key = entry.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not colon or not tenant or not key:
            raise ConfigError(f"BRIDGE_SERVICE_KEYS: entry {number} is not `name:key` (e.g. `acme:<long random>`)")
        check_service_key(key, where=f"BRIDGE_SERVICE_KEYS: the key of {tenant!r}")
        if seen.get(key, tenant) != tenant:
            raise ConfigError(f"BRIDGE_SERVICE_KEYS: {seen[key]!r} and {tenant!r} have the same key")
        seen[key] = tenant
        pairs.append((tenant, key))
    if not pairs:
        raise ConfigError("BRIDGE_SERVICE_KEYS: no `name:key` pair given")
    return pairs


def check_service_key(key: str, *, where: str) -> None:
    """The one rule for a service key, wherever it is configured: at least `MIN_KEY_LENGTH` characters.

    Raises:
        ConfigError: the key is too short; the message starts with `where` (which key) and never shows it.
    """
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"{where} is shorter than {MIN_KEY_LENGTH} characters; use a long random key "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (`127.0.0.0/8`, `::1`, `localhost`)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def owner_from_request(request: Request, keys: ServiceKeys) -> Owner:
    """The owner a request acts for: the tenant of its bearer key and the user of `X-Bridge-User`.

    Raises:
        ApiError: 401 without a valid `Authorization: Bearer <service key>`; 400 without a usable
            `X-Bridge-User`.
    """
    return Owner(tenant=tenant_from_request(request, keys), user=user_from_request(request))


def tenant_from_request(request: Request, keys: ServiceKeys) -> str:
    """The tenant of the request's bearer service key.

    Raises:
        ApiError: 401 without a valid `Authorization: Bearer <service key>`.
    """
    header = request.headers.get("authorization")
    if header is None:
        raise ApiError(
            401, "unauthorized", "send the service key as `Authorization: Bearer <key>`", headers=_UNAUTHORIZED_HEADERS
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "the Authorization header must read `Bearer <service key>`",
            headers=_UNAUTHORIZED_HEADERS,
        )
    tenant = keys.tenant_of(token.strip())
    if tenant is None:
        raise ApiError(401, "unauthorized", "the service key is not valid", headers=_UNAUTHORIZED_HEADERS)
    return tenant


def user_from_request(request: Request) -> str:
    """The end user named by `X-Bridge-User` (the backend's own id for its user).

    Raises:
        ApiError: 400 when the header is missing, empty, too long, not UTF-8 or holds control characters.
    """
    raw = request.headers.get(USER_HEADER)
    if raw is None or not raw.strip():
        raise ApiError(
            400,
            "missing_user",
            f"send the end user's id in the `{USER_HEADER}` header: the service acts for one end user per request",
        )
    try:
        # Starlette decodes header bytes as Latin-1; the id was sent as UTF-8.
        user = raw.strip().encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_user", f"`{USER_HEADER}` must be UTF-8 text") from None
    if len(user) > MAX_USER_ID_LENGTH:
        raise ApiError(400, "invalid_user", f"`{USER_HEADER}` is longer than {MAX_USER_ID_LENGTH} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in user):
        raise ApiError(400, "invalid_user", f"`{USER_HEADER}` must not hold control characters")
    return user
