"""Who a conversation acts for: `EndUser` (the runtime's user), `OmniIdentity`, and the resolver between them.

The runtime passes its own user key (`external_id`); the resolver finds (or upserts) the Omni embed user and
returns an `OmniIdentity`. There is no default identity anywhere: no identity, no query.

Resolving costs Omni two requests (generate-session to upsert, then the SCIM lookup), and repeating them on every
message was the largest avoidable latency seen in practice, so results are cached and a burst of resolutions of
one user shares a single flight. The reverse lookup (Omni user id → external id, for callers that name users as
Omni does) is cached the same way.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from omni_bridge._bounded import BoundedMap
from omni_bridge.exceptions import IdentityError, OmniBridgeError
from omni_bridge.tools import OmniRestClient

__all__ = ["EndUser", "IdentityResolver", "OmniIdentity"]

logger = logging.getLogger(__name__)


class OmniIdentity(BaseModel):
    """An end user resolved to an Omni user. Immutable; a conversation is bound to one for life."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    """The runtime's own user key (Omni's `embedExternalId`)."""
    user_id: str
    """The Omni user id (UUID): sent as `X-MCP-User-ID` and as the AI Jobs `userId`."""
    server: str
    """The Omni instance this id belongs to (base URL); ids of one instance mean nothing on another."""
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class EndUser:
    """The runtime's own user: its key, and optionally the profile Omni should hold for it.

    With a profile (name, groups or attributes) the embed user is created or updated (generate-session) before
    it is looked up, and Omni replaces groups and attributes with what is given here; with only an
    `external_id` the user must already exist in Omni and is left as it is.
    """

    external_id: str
    name: str | None = None
    groups: tuple[str, ...] | None = None
    user_attributes: Mapping[str, Any] | None = None
    entity: str | None = None
    email: str | None = None
    connection_roles: Mapping[str, str] | None = None
    """Omni roles per connection id, e.g. `{"<connection id>": "VIEWER"}` (a Viewer is offered no `getData`)."""
    model_roles: Mapping[str, str] | None = None
    """Omni roles per model id, the same shape."""

    @property
    def has_profile(self) -> bool:
        profile = (self.name, self.groups, self.user_attributes, self.entity, self.email)
        return any(v is not None for v in (*profile, self.connection_roles, self.model_roles))


@dataclass(frozen=True, slots=True)
class _Upsert:
    """What generate-session sends for one user (besides the external id)."""

    name: str
    groups: tuple[str, ...] | None
    user_attributes: Mapping[str, Any] | None
    entity: str | None
    email: str | None
    connection_roles: Mapping[str, str] | None = None
    model_roles: Mapping[str, str] | None = None

    def fingerprint(self) -> str:
        # Group order carries no meaning, so it does not force a new upsert; everything else is taken as given.
        canonical = {
            "name": self.name,
            "groups": sorted(self.groups) if self.groups is not None else None,
            "userAttributes": dict(self.user_attributes) if self.user_attributes is not None else None,
            "entity": self.entity,
            "email": self.email,
            "connectionRoles": dict(self.connection_roles) if self.connection_roles is not None else None,
            "modelRoles": dict(self.model_roles) if self.model_roles is not None else None,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    fingerprint: str
    identity: OmniIdentity | None = None
    error: OmniBridgeError | None = None


@dataclass(frozen=True, slots=True)
class _Flight:
    fingerprint: str
    task: asyncio.Task[OmniIdentity]


class IdentityResolver:
    """Maps the runtime's user keys to Omni users: cached, single-flight, never a default user.

    A resolution is: a cache hit; else (with `upsert`) generate-session, which creates or updates the embed user
    with the name, groups and attributes given, then the SCIM lookup of its Omni id.

    The cache has one entry per external id, and that entry remembers a fingerprint of what the upsert sent
    (name, groups, user attributes, entity, email). A hit needs the same fingerprint, so a changed attribute set
    upserts again. Keying the cache by (external id, fingerprint) instead would be wrong: Omni keeps only the
    last upsert, so after attributes A, then B, a cached A would skip the upsert that puts A back. For the same
    reason, a resolution with other attributes waits for a running one of the same user, then runs its own.
    With `upsert=False` nothing is sent and the fingerprint plays no part.

    Successes are kept `ttl_seconds`; failures (not found, Omni refused or unreachable) `failure_ttl_seconds`,
    then tried again. The cache holds at most `max_entries` users and forgets the least recently used first;
    `forget_expired` drops what has expired (the owning connection calls it periodically, so a server that
    served many users gives the memory back once they are gone). External ids are never logged in clear (a
    short hash stands in).

    `external_id_for` is the reverse lookup (Omni user id → external id), cached in its own bounded map: a found
    user for `ttl_seconds`, an unknown one for `failure_ttl_seconds`; errors reaching Omni are not cached.
    """

    def __init__(
        self,
        rest: OmniRestClient,
        *,
        server: str,
        ttl_seconds: float = 300,
        failure_ttl_seconds: float = 5,
        upsert: bool = True,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build a resolver.

        Args:
            rest: the REST client of the Omni instance (an organization key is needed for SCIM and upserts).
            server: the instance's base URL, recorded in every `OmniIdentity` it returns.
            ttl_seconds: how long a resolved identity is reused.
            failure_ttl_seconds: how long a failure is answered from the cache before Omni is asked again.
            upsert: create or update the embed user (generate-session) before looking it up.
            max_entries: how many users the cache holds at most.
            clock: monotonic seconds (tests pass a fake clock to step over a TTL).
        """
        if not server:
            raise ValueError("server (the Omni base URL) is required")
        if ttl_seconds <= 0 or failure_ttl_seconds < 0 or max_entries < 1:
            raise ValueError("ttl_seconds must be positive, failure_ttl_seconds not negative, max_entries >= 1")
        self._rest = rest
        self._server = server
        self._ttl = ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._upsert = upsert
        self._max_entries = max_entries
        self._clock = clock
        self._entries: BoundedMap[str, _Entry] = BoundedMap(max_entries, clock=clock)
        self._flights: dict[str, _Flight] = {}
        self._reverse: BoundedMap[str, tuple[str | None]] = BoundedMap(max_entries, clock=clock)
        """Omni user id -> (external id, or `None` for a user Omni does not know)."""
        self._hits = 0
        self._lookups = 0

    def __repr__(self) -> str:
        live = list(self._entries.values())
        failures = sum(1 for e in live if e.error is not None)
        return (
            f"<IdentityResolver cached={len(live) - failures} failures={failures} "
            f"in_flight={len(self._flights)} hits={self._hits} lookups={self._lookups}>"
        )

    async def resolve(
        self,
        external_id: str,
        *,
        name: str | None = None,
        groups: Sequence[str] | None = None,
        user_attributes: Mapping[str, Any] | None = None,
        entity: str | None = None,
        email: str | None = None,
        connection_roles: Mapping[str, str] | None = None,
        model_roles: Mapping[str, str] | None = None,
        upsert: bool | None = None,
    ) -> OmniIdentity:
        """The Omni identity of the runtime's user `external_id`.

        Args:
            external_id: the runtime's own user key (Omni's `externalId`); compared exactly, case included.
            name: the display name to upsert; defaults to `external_id`.
            groups: Omni group names to upsert (they replace the user's groups).
            user_attributes: user attributes to upsert, e.g. `{"region": "West"}` (they replace the old ones).
            entity: the embed entity to upsert.
            email: the email to upsert.
            connection_roles: Omni roles per connection id to upsert (`connectionRoles`).
            model_roles: Omni roles per model id to upsert (`modelRoles`).
            upsert: create or update the embed user first; `None` follows the resolver's setting. Pass `False`
                when no profile is known: Omni replaces groups and attributes with what an upsert sends.

        Raises:
            IdentityError: `external_id` is empty, or Omni has no embed user with it.
            OmniError: Omni refused a request or could not be reached (also answered from the cache briefly).
        """
        if not isinstance(external_id, str) or not external_id.strip():
            raise IdentityError("an external user id is required: there is no default user")
        plan = None
        if self._upsert if upsert is None else upsert:
            plan = _Upsert(
                name=name or external_id,
                groups=tuple(groups) if groups is not None else None,
                user_attributes=dict(user_attributes) if user_attributes is not None else None,
                entity=entity,
                email=email,
                connection_roles=dict(connection_roles) if connection_roles is not None else None,
                model_roles=dict(model_roles) if model_roles is not None else None,
            )
        fingerprint = plan.fingerprint() if plan is not None else ""
        while True:
            identity = self._cached(external_id, fingerprint)
            if identity is not None:
                return identity
            flight = self._flights.get(external_id)
            if flight is None:
                flight = self._take_off(external_id, fingerprint, plan)
            if flight.fingerprint == fingerprint:
                # shield: one caller giving up must not cancel the flight the others wait for
                return await asyncio.shield(flight.task)
            await asyncio.wait([flight.task])  # another attribute set is being upserted: ours goes after it

    async def external_id_for(self, user_id: str) -> str | None:
        """The external id of the embed user whose Omni user id is `user_id`, or `None` when Omni has none.

        Raises:
            OmniError: Omni refused the lookup or could not be reached (not cached).
        """
        cached = self._reverse.get(user_id)
        if cached is not None:
            return cached[0]
        user = await self._rest.get_embed_user(user_id)
        external = user.embed_external_id if user is not None else None
        self._reverse.put(user_id, (external,), ttl=self._ttl if external else self._failure_ttl)
        return external

    def invalidate(self, external_id: str) -> bool:
        """Forget the cached identity (or failure) of `external_id`; returns whether there was one."""
        return self._entries.pop(external_id) is not None

    def clear(self) -> None:
        """Forget every cached identity, failure and reverse lookup."""
        self._entries.clear()
        self._reverse.clear()

    def forget_expired(self) -> int:
        """Drop the identities, failures and reverse lookups whose time is up; returns how many."""
        return self._entries.expire() + self._reverse.expire()

    @property
    def cached(self) -> int:
        """Entries held (identities, failures and reverse lookups), expired ones not yet dropped included."""
        return len(self._entries) + len(self._reverse)

    # --- internals -------------------------------------------------------------------------------------

    def _cached(self, external_id: str, fingerprint: str) -> OmniIdentity | None:
        entry = self._entries.get(external_id)
        if entry is None or entry.fingerprint != fingerprint:
            return None
        self._hits += 1
        if entry.error is not None:
            raise copy.copy(entry.error)  # a fresh object, so tracebacks do not pile up on the cached one
        assert entry.identity is not None
        return entry.identity

    def _take_off(self, external_id: str, fingerprint: str, upsert: _Upsert | None) -> _Flight:
        self._lookups += 1
        task = asyncio.create_task(self._fly(external_id, fingerprint, upsert), name="omni-bridge identity")
        flight = _Flight(fingerprint, task)
        self._flights[external_id] = flight
        task.add_done_callback(lambda done: self._landed(external_id, done))
        return flight

    def _landed(self, external_id: str, task: asyncio.Task[OmniIdentity]) -> None:
        # `_fly` already left `_flights`; this covers a task cancelled before it ever ran.
        flight = self._flights.get(external_id)
        if flight is not None and flight.task is task:
            del self._flights[external_id]
        # Every waiter may have been cancelled: reading the exception keeps asyncio from reporting it as lost.
        if not task.cancelled():
            task.exception()

    async def _fly(self, external_id: str, fingerprint: str, upsert: _Upsert | None) -> OmniIdentity:
        try:
            identity = await self._lookup(external_id, upsert)
        except OmniBridgeError as exc:
            self._entries.put(external_id, _Entry(fingerprint, error=exc), ttl=self._failure_ttl)
            raise
        else:
            self._entries.put(external_id, _Entry(fingerprint, identity=identity), ttl=self._ttl)
            return identity
        finally:
            # Leave before any waiter wakes up, so that a waiter with other attributes finds the way clear.
            del self._flights[external_id]

    async def _lookup(self, external_id: str, upsert: _Upsert | None) -> OmniIdentity:
        tag = hashlib.sha256(external_id.encode()).hexdigest()[:12]  # the raw external id is never logged
        if upsert is not None:
            logger.debug("upserting embed user %s", tag)
            await self._rest.generate_session(
                external_id,
                upsert.name,
                groups=upsert.groups,
                user_attributes=upsert.user_attributes,
                entity=upsert.entity,
                email=upsert.email,
                connection_roles=upsert.connection_roles,
                model_roles=upsert.model_roles,
            )
        user = await self._rest.find_embed_user(external_id)
        if user is None:
            logger.info("no Omni embed user for %s", tag)
            if upsert is not None:
                raise IdentityError(
                    f"Omni has no embed user with external id {external_id!r}, although generate-session "
                    "just upserted it"
                )
            raise IdentityError(
                f"Omni has no embed user with external id {external_id!r}: embed users exist after their first "
                "embed login, or resolve with upsert on"
            )
        logger.debug("resolved embed user %s", tag)
        return OmniIdentity(
            external_id=external_id, user_id=user.id, server=self._server, display_name=user.display_name
        )
