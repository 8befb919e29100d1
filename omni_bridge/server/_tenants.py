"""Tenants at Omni: how each service key's end users map to Omni embed users, and whether it may write profiles.

Why: Omni's external ids are global to an instance, while `X-Bridge-User` is a backend's own id for its user. If
two tenants' `cust-42` were sent to Omni as they are, one backend would act as the other's user, and a profile it
sent (`region: all`) would rewrite what the other's user may see. So each tenant names its users in a namespace:

- **own** (the default whenever more than one tenant is configured): the Omni external id is
  `<tenant>/<user>`. A namespace is a tenant's name, which may not hold `/`, so the first `/` splits every such
  id in exactly one way: two namespaces never produce the same external id, and the user part is kept as sent.
- **shared=<tenant>**: the namespace of that tenant (one company's several backends acting for the same users).
- **plain**: Omni's external ids as they are, so embed users made by embed logins resolve unchanged. The default
  of a single-tenant deployment (one key, or the development key). Beside namespaced tenants, a plain tenant may
  not send an id that starts with a namespace in use and `/` (it would be that tenant's user).

And each tenant either may **upsert** (a `user_profile` creates or rewrites its embed user, the default) or only
**lookup** users that already exist (a profile is refused with 403 `profile_write_forbidden`).

`BRIDGE_TENANTS` reads `tenant:part:part,…` where the parts are one namespace mode (`own`, `shared=<tenant>`,
`plain`) and one profile rule (`upsert`, `lookup`), both optional: `acme:own:upsert,beta:shared=acme:lookup`.
Tenants it does not name get the default. Errors name the variable and the entry, never what an entry held
that is not a tenant's name (it may be a key pasted in the wrong place).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from omni_bridge.agent import EndUser
from omni_bridge.exceptions import ConfigError, IdentityError, OmniError, OmniHTTPError
from omni_bridge.server._auth import DEV_TENANT, USER_HEADER, parse_service_keys
from omni_bridge.server._envelope import ApiError
from omni_bridge.stores import Owner

if TYPE_CHECKING:
    from omni_bridge.config import Settings
    from omni_bridge.server._service import Service
    from omni_bridge.server._threads_models import UserProfile

__all__ = ["SEPARATOR", "VARIABLE", "TenantMode", "TenantPolicy", "acting_user", "resolve_acting_user"]

VARIABLE = "BRIDGE_TENANTS"
SEPARATOR = "/"
"""Between a namespace and the user's own id in an Omni external id (`acme/cust-42`)."""
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FORMS = "`own`, `shared=<tenant>`, `plain`, `upsert` or `lookup`"
_EXAMPLE = "e.g. `acme:own:upsert,beta:shared=acme:lookup`"

Kind = Literal["own", "shared", "plain"]


@dataclass(frozen=True, slots=True)
class TenantMode:
    """How one tenant's end users are named at Omni, and whether it may write their profiles."""

    tenant: str
    namespace: str | None
    """The prefix of its users' external ids (`<namespace>/<user>`); `None`: plain external ids."""
    shares_with: str | None
    """The tenant whose namespace it uses (`shared=`), or `None`."""
    upsert: bool
    """Whether a `user_profile` may create or rewrite its embed users; else users are only looked up."""

    def describe(self) -> str:
        """One line for `doctor`: the tenant, its namespace and its profile rule (never a key)."""
        ids = "`<user>`" if self.namespace is None else f"`{self.namespace}{SEPARATOR}<user>`"
        if self.shares_with is not None:
            where = f"shares the namespace of {self.shares_with!r} (Omni external ids {ids})"
        elif self.namespace is not None:
            where = f"own namespace (Omni external ids {ids})"
        else:
            where = f"plain Omni external ids ({ids})"
        rule = "may upsert profiles" if self.upsert else "lookup only (profiles refused)"
        return f"{self.tenant}: {where}; {rule}"


class TenantPolicy:
    """Every tenant's `TenantMode`, and the two-way mapping between its users and Omni's external ids."""

    def __init__(self, modes: Iterable[TenantMode]) -> None:
        self._modes = {mode.tenant: mode for mode in modes}
        self._namespaces = frozenset(m.namespace for m in self._modes.values() if m.namespace is not None)

    def __repr__(self) -> str:
        return f"<TenantPolicy {sorted(self._modes)!r}>"

    @property
    def modes(self) -> list[TenantMode]:
        """The tenants' modes, sorted by tenant."""
        return [self._modes[name] for name in sorted(self._modes)]

    def mode(self, tenant: str) -> TenantMode:
        """The mode of `tenant` (a tenant of the service keys)."""
        return self._modes[tenant]

    def external_id(self, tenant: str, user: str) -> str | None:
        """The Omni external id of `tenant`'s user `user`; `None` when a plain tenant names a namespaced id."""
        namespace = self._modes[tenant].namespace
        if namespace is not None:
            return f"{namespace}{SEPARATOR}{user}"
        return None if self._in_a_namespace(user) else user

    def user_of(self, tenant: str, external_id: str) -> str | None:
        """`tenant`'s own id for the Omni user with `external_id`, or `None` when that user is not its own."""
        namespace = self._modes[tenant].namespace
        if namespace is None:
            return None if self._in_a_namespace(external_id) else external_id
        prefix = namespace + SEPARATOR
        user = external_id[len(prefix) :] if external_id.startswith(prefix) else ""
        return user or None

    def _in_a_namespace(self, external_id: str) -> bool:
        head, separator, _ = external_id.partition(SEPARATOR)
        return bool(separator) and head in self._namespaces

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantPolicy:
        """The policy `serve` would use: for the tenants of `BRIDGE_SERVICE_KEYS`, else the development key's.

        Raises:
            ConfigError: `BRIDGE_SERVICE_KEYS` or `BRIDGE_TENANTS` would be refused (never showing a key).
        """
        keys = settings.bridge_service_keys
        tenants = [DEV_TENANT] if keys is None else [name for name, _ in parse_service_keys(keys.get_secret_value())]
        return cls.parse(settings.bridge_tenants, tenants)

    @classmethod
    def parse(cls, value: str | None, tenants: Iterable[str]) -> TenantPolicy:
        """The policy of `BRIDGE_TENANTS` (`value`; `None` or blank: the defaults) for the keys' `tenants`.

        The default of a tenant not named: `plain` when it is the only tenant, else `own`; `upsert`.

        Raises:
            ConfigError: an entry is not `tenant:part…`, names a tenant without a service key, repeats a tenant
                or a kind of part, shares with itself, with an unknown tenant or with one that itself shares,
                or a tenant whose name holds characters a namespace cannot own. The message names
                `BRIDGE_TENANTS`; what it quotes is only a configured tenant's name.
        """
        known = sorted(set(tenants))
        given = _entries(value or "", known)
        default: Kind = "plain" if len(known) == 1 else "own"
        kinds = {tenant: given.get(tenant, _Entry()).kind or default for tenant in known}
        modes = []
        for tenant in known:
            entry = given.get(tenant, _Entry())
            kind, shares = kinds[tenant], entry.shares
            if kind == "shared":
                assert shares is not None
                if kinds[shares] == "shared":
                    raise ConfigError(
                        f"{VARIABLE}: {tenant!r} shares the namespace of {shares!r}, which shares another's; "
                        "name the tenant that owns the namespace"
                    )
                owner: str | None = shares if kinds[shares] == "own" else None
            else:
                owner = tenant if kind == "own" else None
            if owner is not None and not _NAMESPACE.fullmatch(owner):
                raise ConfigError(
                    f"{VARIABLE}: tenant {owner!r} cannot own a namespace: the Omni external id is "
                    f"`<tenant>{SEPARATOR}<user>`, so its name must be letters, digits, `.`, `_` or `-` (at most "
                    "64, starting with a letter or digit); rename it in BRIDGE_SERVICE_KEYS"
                )
            upsert = entry.upsert if entry.upsert is not None else True
            modes.append(TenantMode(tenant, owner, shares if kind == "shared" else None, upsert))
        return cls(modes)


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: Kind | None = None
    shares: str | None = None
    upsert: bool | None = None


def _entries(value: str, known: list[str]) -> Mapping[str, _Entry]:
    """The entries of `BRIDGE_TENANTS` by tenant, each checked on its own."""
    tenants = ", ".join(known)
    found: dict[str, _Entry] = {}
    for number, raw in enumerate((e.strip() for e in value.split(",")), start=1):
        if not raw:
            continue
        tenant, *parts = (part.strip() for part in raw.split(":"))
        if not tenant or not parts or not all(parts):
            raise ConfigError(f"{VARIABLE}: entry {number} is not `tenant:part[:part]` ({_EXAMPLE})")
        if tenant not in known:
            raise ConfigError(
                f"{VARIABLE}: entry {number} names a tenant without a service key (the tenants are: {tenants})"
            )
        if tenant in found:
            raise ConfigError(f"{VARIABLE}: tenant {tenant!r} is listed twice")
        entry = _Entry()
        for place, part in enumerate(parts, start=1):
            word, equals, other = part.partition("=")
            word = word.strip().lower()
            if word in ("own", "plain", "shared") and entry.kind is not None:
                raise ConfigError(f"{VARIABLE}: tenant {tenant!r} has two namespace modes; give one")
            if word in ("upsert", "lookup") and entry.upsert is not None:
                raise ConfigError(f"{VARIABLE}: tenant {tenant!r} has two profile rules; give `upsert` or `lookup`")
            if word in ("own", "plain") and not equals:
                kind: Kind = "own" if word == "own" else "plain"
                entry = _Entry(kind=kind, upsert=entry.upsert)
            elif word in ("upsert", "lookup") and not equals:
                entry = _Entry(kind=entry.kind, shares=entry.shares, upsert=word == "upsert")
            elif word == "shared" and equals:
                shares = other.strip()
                if shares not in known:
                    raise ConfigError(
                        f"{VARIABLE}: tenant {tenant!r} shares with a tenant without a service key "
                        f"(the tenants are: {tenants})"
                    )
                if shares == tenant:
                    raise ConfigError(f"{VARIABLE}: tenant {tenant!r} shares with itself; use `own`")
                entry = _Entry(kind="shared", shares=shares, upsert=entry.upsert)
            else:
                raise ConfigError(f"{VARIABLE}: part {place} of tenant {tenant!r} is not one of {_FORMS}")
        found[tenant] = entry
    return found


# --- acting for a request's owner -------------------------------------------------------------------------


def acting_user(policy: TenantPolicy, owner: Owner, profile: UserProfile | None = None) -> EndUser:
    """The end user a request of `owner` acts for at Omni: its external id there, and the profile to upsert.

    Raises:
        ApiError: 403 `profile_write_forbidden` when a lookup-only tenant sends a profile; 400 `invalid_user`
            when a plain tenant names an id of another tenant's namespace.
    """
    mode = policy.mode(owner.tenant)
    if profile is not None and not mode.upsert:
        raise ApiError(
            403,
            "profile_write_forbidden",
            f"the service key of tenant {owner.tenant!r} may only look end users up ({VARIABLE}): "
            "send no `user_profile`; the end user must already exist in Omni",
        )
    external = policy.external_id(owner.tenant, owner.user)
    if external is None:
        raise ApiError(
            400, "invalid_user", f"`{USER_HEADER}` must not start with another tenant's namespace and `{SEPARATOR}`"
        )
    if profile is None:
        return EndUser(external)
    groups = tuple(profile.groups) if profile.groups is not None else None
    return EndUser(external, name=profile.name, groups=groups, user_attributes=profile.user_attributes)


async def resolve_acting_user(service: Service, owner: Owner, profile: UserProfile | None = None) -> EndUser:
    """`acting_user`, resolved at Omni now (upserted first with a profile), so that nothing is stored for an end
    user Omni does not know. The identity stays cached, so the run that follows does not ask Omni again.

    Raises:
        ApiError: as `acting_user`; 422 `unknown_user` when Omni has no such end user, 422 `invalid_profile` when
            Omni refused the upsert of a profile; 502 `omni_unavailable`
            when Omni refused the lookup or could not be reached.
    """
    user = acting_user(service.tenants, owner, profile)
    try:
        await service.bridge.resolve(user)
    except IdentityError:
        hint = (
            "send a `user_profile` to create them"
            if service.tenants.mode(owner.tenant).upsert
            else "this service key only looks users up, so they must exist in Omni first (e.g. after an embed login)"
        )
        raise ApiError(422, "unknown_user", f"Omni has no end user with this `{USER_HEADER}`; {hint}") from None
    except OmniHTTPError as exc:
        if profile is not None and exc.status in (400, 422):  # the upsert's input, not Omni, is at fault
            raise ApiError(
                422,
                "invalid_profile",
                f"Omni refused to create or update this end user (HTTP {exc.status}): check `user_profile` and "
                f"`{USER_HEADER}` (Omni takes external ids of up to 255 characters, with its tenant's namespace)",
            ) from None
        raise ApiError(
            502, "omni_unavailable", f"Omni refused the lookup of the end user (HTTP {exc.status})"
        ) from None
    except OmniError:
        raise ApiError(502, "omni_unavailable", "Omni could not be reached to look up the end user") from None
    return user
