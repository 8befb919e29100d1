"""`IdentityResolver` against the sandbox: one flight per user, upserts that follow the attributes, TTLs, bounds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from omni_bridge.agent import IdentityResolver, OmniIdentity
from omni_bridge.exceptions import IdentityError, OmniHTTPError
from omni_bridge.sandbox import Sandbox, embed_user_id
from omni_bridge.tools import OmniRestClient
from tests.conftest import Served


class Clock:
    """A monotonic clock the test moves by hand, to step over a TTL without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def rest(served: Served) -> AsyncIterator[OmniRestClient]:
    async with OmniRestClient(served.url, served.org_key) as client:
        yield client


@pytest.fixture(scope="module")
def faulty() -> Iterator[Served]:
    sandbox = Sandbox()
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


def count(served: Served, name: str) -> int:
    return served.sandbox.stats.counts[f"rest.{name}"]


def new_user() -> str:
    return f"new-user-{uuid.uuid4().hex}"


async def test_100_concurrent_resolutions_of_a_new_user_reach_omni_once(served: Served, rest: OmniRestClient) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    external_id = new_user()
    upserts, lookups = count(served, "generate_session"), count(served, "scim_list")
    identities = await asyncio.gather(
        *(resolver.resolve(external_id, name="New User", user_attributes={"region": "West"}) for _ in range(100))
    )
    assert count(served, "generate_session") - upserts == 1
    assert count(served, "scim_list") - lookups == 1
    expected = OmniIdentity(
        external_id=external_id, user_id=embed_user_id(external_id), server=served.url, display_name="New User"
    )
    assert set(identities) == {expected}
    assert await resolver.resolve(external_id, name="New User", user_attributes={"region": "West"}) == expected
    assert count(served, "scim_list") - lookups == 1  # and later ones come from the cache
    assert served.sandbox.directory.get(expected.user_id).attributes == {"region": "West"}


async def test_a_changed_attribute_set_upserts_again_even_back_to_an_earlier_one(
    served: Served, rest: OmniRestClient
) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    external_id = new_user()
    before = count(served, "generate_session")
    west = await resolver.resolve(external_id, user_attributes={"region": "West"})
    await resolver.resolve(external_id, user_attributes={"region": "East"})
    again = await resolver.resolve(external_id, user_attributes={"region": "West"})
    assert count(served, "generate_session") - before == 3  # Omni keeps only the last upsert: West must be re-sent
    assert served.sandbox.directory.get(west.user_id).attributes == {"region": "West"}
    await resolver.resolve(external_id, user_attributes={"region": "West"})
    await resolver.resolve(external_id, user_attributes={"region": "West"}, groups=None)
    assert count(served, "generate_session") - before == 3
    assert west == again and west.display_name == external_id  # the name defaults to the external id


async def test_group_order_does_not_force_a_new_upsert_but_new_groups_do(served: Served, rest: OmniRestClient) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    external_id = new_user()
    before = count(served, "generate_session")
    await resolver.resolve(external_id, groups=["Finance", "Ops"])
    await resolver.resolve(external_id, groups=["Ops", "Finance"])
    assert count(served, "generate_session") - before == 1
    await resolver.resolve(external_id, groups=["Ops"])
    assert count(served, "generate_session") - before == 2
    assert served.sandbox.directory.get(embed_user_id(external_id)).groups == ("Ops",)


async def test_resolutions_with_different_attributes_run_one_after_the_other(
    served: Served, rest: OmniRestClient
) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    external_id = new_user()
    before = count(served, "generate_session")
    first, second = await asyncio.gather(
        resolver.resolve(external_id, user_attributes={"region": "West"}),
        resolver.resolve(external_id, user_attributes={"region": "East"}),
    )
    assert first == second and count(served, "generate_session") - before == 2
    assert served.sandbox.directory.get(first.user_id).attributes == {"region": "East"}  # the later call wins
    await resolver.resolve(external_id, user_attributes={"region": "East"})
    assert count(served, "generate_session") - before == 2


async def test_a_cancelled_caller_does_not_cancel_the_flight_the_others_share(
    served: Served, rest: OmniRestClient
) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    external_id = new_user()
    impatient = asyncio.create_task(resolver.resolve(external_id))
    patient = asyncio.create_task(resolver.resolve(external_id))
    await asyncio.sleep(0)  # a yield, not a wait: both new tasks run up to the shared flight
    assert "in_flight=1" in repr(resolver) and "lookups=1" in repr(resolver)
    impatient.cancel()
    identity = await patient
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert identity.user_id == embed_user_id(external_id)


async def test_an_unknown_user_without_upsert_is_an_identity_error_cached_briefly(
    served: Served, rest: OmniRestClient
) -> None:
    clock = Clock()
    resolver = IdentityResolver(rest, server=served.url, upsert=False, failure_ttl_seconds=5, clock=clock)
    external_id = new_user()
    before, upserts = count(served, "scim_list"), count(served, "generate_session")
    with pytest.raises(IdentityError, match="no embed user with external id") as first:
        await resolver.resolve(external_id)
    with pytest.raises(IdentityError) as cached:
        await resolver.resolve(external_id)
    assert count(served, "scim_list") - before == 1 and cached.value is not first.value
    assert str(cached.value) == str(first.value) and external_id in str(first.value)
    clock.now += 5.1
    with pytest.raises(IdentityError):
        await resolver.resolve(external_id)
    assert count(served, "scim_list") - before == 2
    assert count(served, "generate_session") == upserts  # upsert off: never sent


async def test_without_upsert_an_existing_user_resolves_with_a_lookup_only(
    served: Served, rest: OmniRestClient
) -> None:
    resolver = IdentityResolver(rest, server=served.url, upsert=False)
    upserts = count(served, "generate_session")
    carol = await resolver.resolve("carol", name="ignored without upsert")
    assert carol == OmniIdentity(
        external_id="carol", user_id=embed_user_id("carol"), server=served.url, display_name="Carol Chen"
    )
    assert count(served, "generate_session") == upserts


async def test_a_resolved_identity_is_reused_for_its_ttl_then_looked_up_again(
    served: Served, rest: OmniRestClient
) -> None:
    clock = Clock()
    resolver = IdentityResolver(rest, server=served.url, upsert=False, ttl_seconds=300, clock=clock)
    before = count(served, "scim_list")
    await resolver.resolve("alice")
    clock.now += 299
    await resolver.resolve("alice")
    assert count(served, "scim_list") - before == 1
    clock.now += 2
    await resolver.resolve("alice")
    assert count(served, "scim_list") - before == 2


@pytest.mark.parametrize("external_id", ["", "   ", "\t\n"])
async def test_blank_external_ids_are_refused_without_asking_omni(
    served: Served, rest: OmniRestClient, external_id: str
) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    before = (count(served, "scim_list"), count(served, "generate_session"))
    with pytest.raises(IdentityError, match="external user id is required"):
        await resolver.resolve(external_id)
    assert (count(served, "scim_list"), count(served, "generate_session")) == before


async def test_invalidate_makes_the_next_resolution_ask_omni_again(served: Served, rest: OmniRestClient) -> None:
    resolver = IdentityResolver(rest, server=served.url, upsert=False)
    before = count(served, "scim_list")
    await resolver.resolve("bob")
    assert resolver.invalidate("bob") is True
    assert resolver.invalidate("bob") is False
    await resolver.resolve("bob")
    assert count(served, "scim_list") - before == 2


async def test_the_cache_is_bounded_and_forgets_the_least_recently_used(served: Served, rest: OmniRestClient) -> None:
    resolver = IdentityResolver(rest, server=served.url, upsert=False, max_entries=2)
    before = count(served, "scim_list")
    await resolver.resolve("alice")
    await resolver.resolve("bob")
    await resolver.resolve("alice")  # alice is now the most recently used
    await resolver.resolve("carol")  # evicts bob
    assert count(served, "scim_list") - before == 3
    await resolver.resolve("alice")
    assert count(served, "scim_list") - before == 3
    await resolver.resolve("bob")
    assert count(served, "scim_list") - before == 4
    assert repr(resolver) == "<IdentityResolver cached=2 failures=0 in_flight=0 hits=2 lookups=4>"


async def test_omni_failures_are_cached_briefly_then_tried_again(faulty: Served) -> None:
    clock = Clock()
    faulty.sandbox.set_faults(error_rate=1.0, error_status=503)
    try:
        async with OmniRestClient(faulty.url, faulty.org_key, max_retries=0) as rest:
            resolver = IdentityResolver(rest, server=faulty.url, failure_ttl_seconds=5, clock=clock)
            before = count(faulty, "generate_session")
            for _ in range(3):
                with pytest.raises(OmniHTTPError) as caught:
                    await resolver.resolve("dan")
                assert caught.value.status == 503
            assert count(faulty, "generate_session") - before == 1
            assert repr(resolver) == "<IdentityResolver cached=0 failures=1 in_flight=0 hits=2 lookups=1>"
            faulty.sandbox.set_faults(error_rate=0.0)
            clock.now += 5.1
            dan = await resolver.resolve("dan")
    finally:
        faulty.sandbox.set_faults(error_rate=0.0)
    assert dan.user_id == embed_user_id("dan") and count(faulty, "generate_session") - before == 2


async def test_repr_shows_counts_and_never_who(served: Served, rest: OmniRestClient) -> None:
    resolver = IdentityResolver(rest, server=served.url)
    external_id = new_user()
    identity = await resolver.resolve(external_id)
    shown = repr(resolver)
    assert shown == "<IdentityResolver cached=1 failures=0 in_flight=0 hits=0 lookups=1>"
    assert external_id not in shown and identity.user_id not in shown


async def test_a_resolver_needs_a_server_and_sane_limits(served: Served, rest: OmniRestClient) -> None:
    with pytest.raises(ValueError, match="server"):
        IdentityResolver(rest, server="")
    with pytest.raises(ValueError, match="max_entries"):
        IdentityResolver(rest, server=served.url, max_entries=0)


async def test_the_reverse_lookup_is_kept_for_the_ttl_and_an_unknown_id_briefly(
    served: Served, rest: OmniRestClient
) -> None:
    clock = Clock()
    resolver = IdentityResolver(rest, server=served.url, ttl_seconds=300, failure_ttl_seconds=5, clock=clock)
    unknown = str(uuid.uuid4())
    before = count(served, "scim_get")
    assert await resolver.external_id_for(embed_user_id("dan")) == "dan"
    assert await resolver.external_id_for(unknown) is None
    clock.now += 4
    assert await resolver.external_id_for(embed_user_id("dan")) == "dan"
    assert await resolver.external_id_for(unknown) is None
    assert count(served, "scim_get") - before == 2
    clock.now += 2  # past the failure TTL, within the TTL
    assert await resolver.external_id_for(unknown) is None
    assert await resolver.external_id_for(embed_user_id("dan")) == "dan"
    assert count(served, "scim_get") - before == 3
