"""Who is who in the sandbox: users (standard and embed), API keys, and the rules for acting as someone.

Omni's rules, as its API documentation states them: an organization API key acts as its
creator (an Org Admin) and may act for any user (`userId`, `X-MCP-User-ID`); a personal access token acts as
its owner and may not act for anyone else (403); an embed MCP token (from the `/oauth/token` grant) acts as its
embed user, like a personal token. Embed users are created or updated by generate-session or the token grant
(upsert on `externalId`) and listed through SCIM. Every user has a role (`_roles`), which shapes its tool list.

User ids are UUIDv5 of the external id, so a restarted sandbox gives every demo user the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from omni_bridge.sandbox._embed_tokens import TOKEN_PREFIX, EmbedTokens
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._query import QueryUser
from omni_bridge.sandbox._roles import DEFAULT_EMBED_ROLE

__all__ = ["DEMO_EMBED_USERS", "DEMO_ROLES", "ApiKey", "Directory", "SandboxUser", "parse_scim_filter"]

_NAMESPACE = uuid.UUID("0b6a4f0e-3d52-4d0c-9a51-5f0c7a0e2b11")
ORG_DOMAIN = "sandbox.embed-exploreomni.co"

AttributeValue = str | list[str] | None


@dataclass(frozen=True, slots=True)
class SandboxUser:
    """One Omni user of the sandbox organization."""

    id: str
    name: str
    email: str
    kind: Literal["standard", "embed"]
    external_id: str | None = None
    entity: str | None = None
    groups: tuple[str, ...] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    is_org_admin: bool = False
    role: str = DEFAULT_EMBED_ROLE
    """Omni's connection/model role (see `_roles`); it decides which MCP tools the user is offered."""
    hidden_models: frozenset[str] = frozenset()
    """Ids (or names) of the models this user may not see: `modelRoles` of `NO_ACCESS`."""
    created: str = ""
    last_modified: str = ""

    @property
    def user_name(self) -> str:
        """The SCIM `userName`: the user's email, or Omni's made-up address for embed users."""
        if self.kind == "embed":
            digest = hashlib.sha256((self.external_id or "").encode()).hexdigest()[:12]
            return f"embed-user-{digest}@{ORG_DOMAIN}"
        return self.email

    def query_user(self) -> QueryUser:
        """The identity a query runs as: attributes plus the system attributes Omni defines."""
        attributes: dict[str, AttributeValue] = dict(self.attributes)
        attributes.setdefault("omni_user_id", self.id)
        attributes.setdefault("omni_user_email", self.email)
        attributes.setdefault("omni_user_name", self.name)
        attributes["omni_user_groups"] = list(self.groups)
        attributes.setdefault("omni_is_org_admin", "true" if self.is_org_admin else "false")
        return QueryUser(user_id=self.id, attributes=attributes, groups=self.groups)

    def scim(self) -> dict[str, Any]:
        """The SCIM resource, shaped like Omni's List/Retrieve embed user answers."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": self.id,
            "userName": self.user_name,
            "displayName": self.name,
            "active": True,
            "emails": [{"primary": True, "value": self.email}],
            "groups": [{"display": g, "value": _stable_id(f"group:{g}")} for g in self.groups],
            "embedEmail": self.email if self.kind == "embed" else None,
            "embedEntity": self.entity,
            "embedExternalId": self.external_id,
            "meta": {"created": self.created, "lastModified": self.last_modified, "resourceType": "User"},
        }


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key the sandbox accepts. `repr` never shows the token."""

    token: str = field(repr=False)
    kind: Literal["org", "personal", "embed"]
    """`embed`: an embed MCP token from the token grant, acting as its embed user only."""
    owner_id: str


def _stable_id(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


def embed_user_id(external_id: str) -> str:
    """The id the sandbox gives the embed user with this external id (stable across restarts)."""
    return _stable_id(f"embed:{external_id}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# The demo organization. Regions are the row-level-security attribute of the e-commerce topics.
ADMIN = SandboxUser(
    id=_stable_id("standard:admin"),
    name="Sandbox Admin",
    email="admin@sandbox.example",
    kind="standard",
    groups=("Finance",),
    attributes={"region": "all"},
    is_org_admin=True,
    role="MANAGER",
)
ANALYST = SandboxUser(
    id=_stable_id("standard:dana"),
    name="Dana Analyst",
    email="dana@sandbox.example",
    kind="standard",
    attributes={"region": "West"},
    role="QUERIER",
)
DEMO_EMBED_USERS: tuple[tuple[str, str, tuple[str, ...], dict[str, AttributeValue]], ...] = (
    ("alice", "Alice Anders", (), {"region": "West"}),
    ("bob", "Bob Brown", (), {"region": "East"}),
    ("carol", "Carol Chen", ("Finance",), {"region": "Central"}),
    ("dan", "Dan Diaz", (), {"region": "South"}),
    ("erin", "Erin Evans", (), {"region": ["West", "East"]}),
    ("nora", "Nora No-Region", (), {}),
    ("vera", "Vera Viewer", (), {"region": "West"}),
)
"""(external id, name, groups, user attributes) of the embed users that exist from the start."""
DEMO_ROLES: dict[str, str] = {"vera": "VIEWER"}
"""The demo embed users whose role is not the embed default (`RESTRICTED_QUERIER`): Vera is a Viewer."""

_FILTER = re.compile(r'^\s*(?P<attr>\w+)\s+(?P<op>\w+)\s+"(?P<value>(?:[^"\\]|\\.)*)"\s*$')
_FILTER_ATTRS = {"username": "userName", "embedexternalid": "embedExternalId"}


def parse_scim_filter(expression: str) -> tuple[str, str, str]:
    """Parse `attr op "value"` (attr `userName`|`embedExternalId`, op `eq`|`co`; names case-insensitive).

    Raises:
        SandboxHTTPError: 400 with a message that says what is supported.
    """
    match = _FILTER.match(expression)
    if match is None:
        raise SandboxHTTPError(400, f'Invalid filter {expression!r}: expected  <attribute> <eq|co> "<value>"')
    attr = _FILTER_ATTRS.get(match["attr"].lower())
    op = match["op"].lower()
    if attr is None:
        raise SandboxHTTPError(400, f"Invalid filter attribute {match['attr']!r}: use userName or embedExternalId")
    if op not in ("eq", "co"):
        raise SandboxHTTPError(400, f"Invalid filter operator {match['op']!r}: use eq or co")
    try:  # a SCIM string is a JSON string: \\ and \" are escapes
        value = json.loads(f'"{match["value"]}"')
    except ValueError:
        raise SandboxHTTPError(400, f"Invalid filter value in {expression!r}: bad escape") from None
    return attr, op, value


class Directory:
    """Users and keys of the sandbox organization. Thread-safe: REST handlers and tests share it."""

    def __init__(self, *, org_key: str, personal_token: str, tokens: EmbedTokens | None = None) -> None:
        self._lock = threading.Lock()
        created = _now()
        self._users: dict[str, SandboxUser] = {}
        for user in (ADMIN, ANALYST):
            self._users[user.id] = replace(user, created=created, last_modified=created)
        for external_id, name, groups, attributes in DEMO_EMBED_USERS:
            role = DEMO_ROLES.get(external_id, DEFAULT_EMBED_ROLE)
            self._add_embed(external_id, name, groups, attributes, entity=None, email=None, role=role)
        self.tokens = tokens or EmbedTokens(lifetime_seconds=86_400)
        self._keys = (ApiKey(org_key, "org", ADMIN.id), ApiKey(personal_token, "personal", ANALYST.id))

    # --- keys and acting-as ------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key behind an `Authorization: Bearer …` header, compared in constant time (or an embed MCP token).

        Raises:
            SandboxHTTPError: 401 when the header is missing, malformed or names no key, or the embed token is
                unknown, revoked or expired.
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SandboxHTTPError(401, "Unauthorized: Missing or invalid API key", headers=_CHALLENGE)
        if token.strip().startswith(TOKEN_PREFIX):
            return ApiKey(token.strip(), "embed", self.tokens.owner(token.strip()))
        found = None
        for key in self._keys:
            if hmac.compare_digest(key.token.encode(), token.strip().encode()):
                found = key
        if found is None:
            raise SandboxHTTPError(401, "Unauthorized: Missing or invalid API key", headers=_CHALLENGE)
        return found

    def act_as(self, key: ApiKey, user_id: str | None) -> SandboxUser:
        """The user a request runs as: `user_id` when given (org keys only), else the key's owner.

        Raises:
            SandboxHTTPError: 403 for a personal token naming another user, 404 for an unknown user id,
                400 for a malformed id.
        """
        if user_id is None or user_id == key.owner_id:
            return self.get(key.owner_id)
        if key.kind != "org":
            raise SandboxHTTPError(403, "User-scoped API keys cannot act on behalf of other users")
        try:
            uuid.UUID(user_id)
        except ValueError:
            raise SandboxHTTPError(400, f"Bad Request: userId must be a UUID, got {user_id[:64]!r}") from None
        user = self._users.get(user_id)
        if user is None:
            raise SandboxHTTPError(404, f"User {user_id} not found")
        return user

    def get(self, user_id: str) -> SandboxUser:
        user = self._users.get(user_id)
        if user is None:
            raise SandboxHTTPError(404, f"User {user_id} not found")
        return user

    # --- embed users ----------------------------------------------------------------------------------

    def upsert_embed(
        self,
        external_id: str,
        name: str,
        *,
        groups: Sequence[str] = (),
        attributes: Mapping[str, AttributeValue] | None = None,
        entity: str | None = None,
        email: str | None = None,
        role: str | None = None,
        hidden_models: frozenset[str] | None = None,
    ) -> SandboxUser:
        """Create or update the embed user with this external id; groups and attributes are replaced.

        `role` `None` keeps the user's role (a new user gets the embed default); `hidden_models` `None` keeps
        the models the user may not see (a new user sees them all).
        """
        return self._add_embed(
            external_id,
            name,
            tuple(groups),
            dict(attributes or {}),
            entity=entity,
            email=email,
            role=role,
            hidden_models=hidden_models,
        )

    def embed_user(self, external_id: str) -> SandboxUser | None:
        """The embed user with this external id, if there is one."""
        with self._lock:
            return self._users.get(embed_user_id(external_id))

    def _add_embed(
        self,
        external_id: str,
        name: str,
        groups: tuple[str, ...],
        attributes: dict[str, AttributeValue],
        *,
        entity: str | None,
        email: str | None,
        role: str | None,
        hidden_models: frozenset[str] | None = None,
    ) -> SandboxUser:
        user_id = embed_user_id(external_id)
        now = _now()
        with self._lock:
            old = self._users.get(user_id)
            user = SandboxUser(
                id=user_id,
                name=name,
                email=email or f"{re.sub(r'[^A-Za-z0-9._-]', '-', external_id)}@customers.example",
                kind="embed",
                external_id=external_id,
                entity=entity,
                groups=groups,
                attributes=attributes,
                role=role or (old.role if old else DEFAULT_EMBED_ROLE),
                hidden_models=(old.hidden_models if old else frozenset()) if hidden_models is None else hidden_models,
                created=old.created if old else now,
                last_modified=now,
            )
            # Re-inserting keeps dict order = creation order, which is how Omni sorts SCIM results.
            self._users[user_id] = user
            return user

    def embed_users(self) -> list[SandboxUser]:
        with self._lock:
            return [u for u in self._users.values() if u.kind == "embed"]

    def find_embed(self, filter_expression: str | None) -> list[SandboxUser]:
        """Embed users matching a SCIM filter (all of them without one), in creation order."""
        users = self.embed_users()
        if not filter_expression:
            return users
        attr, op, value = parse_scim_filter(filter_expression)
        return [u for u in users if _matches(u, attr, op, value)]

    def delete_embed(self, user_id: str) -> None:
        with self._lock:
            user = self._users.get(user_id)
            if user is None or user.kind != "embed":
                raise SandboxHTTPError(404, f"User {user_id} not found")
            del self._users[user_id]

    def all_users(self) -> Iterable[SandboxUser]:
        with self._lock:
            return list(self._users.values())


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="omni"'}


def _matches(user: SandboxUser, attr: str, op: str, value: str) -> bool:
    if attr == "embedExternalId":
        actual = user.external_id or ""  # external ids compare case-sensitively (Omni docs)
    else:
        actual, value = user.user_name.lower(), value.lower()  # emails compare case-insensitively
    return actual == value if op == "eq" else value in actual
