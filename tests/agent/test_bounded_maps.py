"""Every in-memory map of a long-running bridge stays bounded: per-conversation locks, the usage ledger, the
identity caches (both ways), tool lists, the memory conversation store, and the one helper under them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from omni_bridge._bounded import BoundedMap
from omni_bridge._locks import KeyedLocks
from omni_bridge.agent import (
    Bridge,
    Conversation,
    IdentityResolver,
    MemoryConversationStore,
    OmniConnection,
    OmniIdentity,
    TurnUsage,
    Usage,
    UsageLedger,
)
from omni_bridge.config import load_settings
from omni_bridge.exceptions import IdentityError
from omni_bridge.sandbox import embed_user_id
from omni_bridge.tools import OmniRestClient, SessionKey, SessionPool
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until


async def test_a_lock_serializes_its_key_and_is_dropped_when_no_one_holds_or_waits() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("c1"):
            order.append("first in")
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold("c1"):
            order.append("second in")

    one = asyncio.create_task(first())
    await asyncio.sleep(0)
    two = asyncio.create_task(second())
    await asyncio.sleep(0)
    assert len(locks) == 1 and order == ["first in"]

    release.set()
    await asyncio.gather(one, two)
    assert order == ["first in", "first out", "second in"]
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    locks = KeyedLocks()
    async with locks.hold("c1"):
        waiter = asyncio.create_task(locks.hold("c1").__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert len(locks) == 0


def test_the_ledger_keeps_the_most_recent_conversations_and_their_totals() -> None:
    ledger = UsageLedger(max_conversations=3, max_turns=2)
    one = Usage(input_tokens=10, output_tokens=1)
    for conversation in ("a", "b", "c", "d"):
        ledger.add(conversation, one)
    ledger.add("b", one)  # "b" is used again, so "c" is the least recently used now
    ledger.add("e", one)

    assert len(ledger) == 3
    assert ledger.turns("a") == [] and ledger.turns("c") == [] and ledger.total("a") == Usage()
    for _ in range(3):
        ledger.add("d", one)
    assert ledger.turns("d") == [TurnUsage(turn=3, usage=one), TurnUsage(turn=4, usage=one)]
    assert ledger.total("d") == Usage(input_tokens=40, output_tokens=4)
    assert ledger.total("b") == Usage(input_tokens=20, output_tokens=2)


def test_a_bridges_ledger_stays_bounded_while_totals_add_up() -> None:
    bridge = Bridge(load_settings(env_file=None, omni_base_url=None, omni_api_key=None, anthropic_api_key=None))
    one = Usage(input_tokens=3, output_tokens=2, cache_read_input_tokens=1)
    for number in range(5000):
        bridge.ledger.add(f"conversation-{number}", one)
    bridge.ledger.add("conversation-4999", one)

    assert bridge.ledger.turns("conversation-0") == []
    kept = sum(1 for number in range(5000) if bridge.ledger.turns(f"conversation-{number}"))
    assert 0 < kept <= 1000
    assert bridge.ledger.total("conversation-4999") == one + one
    assert [turn.turn for turn in bridge.ledger.turns("conversation-4999")] == [1, 2]


# --- the one bounded-map helper, and every cache built on it -------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand, to step over a TTL without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bounded_map_forgets_the_least_recently_used_and_what_has_expired() -> None:
    clock = Clock()
    entries: BoundedMap[str, int] = BoundedMap(3, ttl=10, clock=clock)
    for number, key in enumerate("abc"):
        entries.put(key, number)
    assert entries.get("a") == 0  # "b" is the least recently used now
    entries.put("d", 3)
    assert len(entries) == 3 and entries.get("b") is None

    entries.put("short", 4, ttl=1)  # "c" makes room
    clock.now += 2
    assert entries.get("short") is None and len(entries) == 2  # read after its time: dropped
    clock.now += 9
    assert entries.expire() == 2 and len(entries) == 0  # "a" and "d": past their 10 s


async def test_the_identity_cache_gives_back_expired_users_without_being_asked_for_them(served: Served) -> None:
    clock = Clock()
    async with OmniRestClient(served.url, served.org_key) as rest:
        resolver = IdentityResolver(rest, server=served.url, upsert=False, ttl_seconds=60, max_entries=3, clock=clock)
        for user in ("alice", "bob", "carol", f"unknown-{uuid.uuid4().hex}"):
            with contextlib.suppress(IdentityError):  # the last is unknown to the sandbox: a failure, cached too
                await resolver.resolve(user)
        assert await resolver.external_id_for(embed_user_id("alice")) == "alice"
        assert await resolver.external_id_for("no-such-user") is None
        assert resolver.cached == 3 + 2  # the size bound: alice left when the unknown user came

        clock.now += 6  # past the failure TTL (5 s): the unknown user and the unknown reverse lookup go
        assert resolver.forget_expired() == 2
        clock.now += 60
        assert resolver.forget_expired() == 3 and resolver.cached == 0


async def test_a_connection_sweeps_its_identity_cache_by_itself(served: Served) -> None:
    async with OmniConnection(base_url=served.url, api_key=served.org_key, identity_ttl=0.01) as omni:
        await omni.resolve("alice")
        await omni.external_id_for(embed_user_id("bob"))
        assert omni.resolver.cached == 2
        await wait_until(lambda: omni.resolver.cached == 0)  # its sweeper runs about every second


async def test_tool_lists_are_cached_for_as_many_users_as_sessions_and_expire(served: Served) -> None:
    clock = Clock()
    sandbox = served.sandbox
    async with SessionPool(
        api_key=served.org_key, protocol="legacy", max_sessions=2, tool_list_ttl=60, clock=clock
    ) as pool:
        keys = [SessionKey(server=sandbox.mcp_url(), user_id=embed_user_id(u)) for u in ("alice", "bob", "carol")]
        for key in keys:
            assert await pool.list_tools(key)
        assert pool.cached_tool_lists == 2
        clock.now += 61
        pool.expire_idle()
        assert pool.cached_tool_lists == 0


async def test_the_memory_conversation_store_keeps_the_most_recently_used_conversations() -> None:
    identity = OmniIdentity(external_id="alice", user_id="u-alice", server="https://acme.omniapp.co")
    async with MemoryConversationStore(max_conversations=2) as store:
        first, second, third = (Conversation(identity=identity, engine="omni") for _ in range(3))
        await store.create(first)
        await store.create(second)
        assert await store.get(first.id) is not None  # second is the least recently used now
        await store.create(third)
        assert await store.get(second.id) is None
        assert {c.id for c in await store.list()} == {first.id, third.id}
