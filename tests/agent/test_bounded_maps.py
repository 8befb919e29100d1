"""The per-conversation locks and the usage ledger of a long-running bridge stay bounded."""

from __future__ import annotations

import asyncio

from omni_bridge.agent import Bridge, TurnUsage, Usage, UsageLedger
from omni_bridge.agent._locks import KeyedLocks
from omni_bridge.config import load_settings


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
