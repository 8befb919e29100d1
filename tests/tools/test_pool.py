"""The session pool against the sandbox over loopback: one session per identity, isolation, recovery.

The tests on the `pool` fixture run under both auth strategies: the org key plus `X-MCP-User-ID`, and per-user
embed MCP tokens minted from the sandbox's embed secret (then no user header is sent at all).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from omni_bridge.exceptions import McpConnectError, McpError, ToolTimeout
from omni_bridge.sandbox import MCP_PATH, Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import EmbedPrincipal, SessionKey, SessionPool
from tests.sandbox.mcp_helpers import wait_until
from tests.tools.http_faults import FaultyTransport

REGIONS = ("West", "East", "Central", "South")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """A sandbox of this module's own: these tests drop sessions and inject faults."""
    box = Sandbox(SandboxConfig(job_step_seconds=0.02))
    with box.run_in_thread():
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> Iterator[None]:
    sandbox.stats.reset()
    yield
    sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None, latency_ms=0, error_rate=0.0)


@pytest.fixture(params=["org_key", "embed_token"])
async def pool(sandbox: Sandbox, request: pytest.FixtureRequest) -> AsyncIterator[SessionPool]:
    async with SessionPool(protocol="legacy", **auth_options(sandbox, request.param)) as pool:
        yield pool


def auth_options(sandbox: Sandbox, auth: str) -> dict[str, Any]:
    """The pool's arguments for one auth strategy against `sandbox`."""
    if auth == "org_key":
        return {"api_key": sandbox.config.org_key}
    assert sandbox.url is not None
    return {"auth": auth, "embed_secret": sandbox.config.embed_secret, "token_url": sandbox.url + "/oauth/token"}


def key_for(sandbox: Sandbox, external_id: str, **scope: Any) -> SessionKey:
    """`external_id`'s key; its principal (whom a token names) is ignored under the org key."""
    principal = EmbedPrincipal.of(external_id)
    return SessionKey(server=sandbox.mcp_url(), user_id=embed_user_id(external_id), principal=principal, **scope)


def regions_in(result: Any) -> set[str]:
    assert not result.is_error, result.content
    rows = list(csv.DictReader(io.StringIO(result.structured_content["csv"])))
    return {row["Region"] for row in rows}


async def test_many_calls_for_one_identity_share_one_session_and_another_identity_gets_its_own(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    alice, bob = key_for(sandbox, "alice"), key_for(sandbox, "bob")

    results = await asyncio.gather(
        *[pool.call_tool(alice, "getData", {"prompt": "revenue by region"}) for _ in range(25)]
    )
    await pool.call_tool(bob, "getData", {"prompt": "revenue by region"})
    await pool.call_tool(alice, "pickModel", {})

    assert all(regions_in(r) == {"West"} for r in results)
    assert sandbox.stats.sessions_opened == {alice.user_id: 1, bob.user_id: 1}
    assert pool.stats().open == 2
    assert "alice" not in repr(pool) and alice.user_id not in repr(alice)


@pytest.mark.parametrize(("protocol", "handshakes"), [("legacy", 1), ("auto", 1), ("modern", 0)])
async def test_every_protocol_mode_opens_at_most_one_handshake_per_identity(
    sandbox: Sandbox, protocol: Any, handshakes: int
) -> None:
    async with SessionPool(api_key=sandbox.config.org_key, protocol=protocol) as pool:
        key = key_for(sandbox, "carol")
        for _ in range(5):
            result = await pool.call_tool(key, "getData", {"prompt": "revenue by region"})
            assert regions_in(result) == {"Central"}
        assert pool.stats().opened_total == 1
    # `modern` pins 2026-07-28 and sends no handshake at all; the others negotiate once.
    assert sum(sandbox.stats.sessions_opened.values()) == handshakes
    assert sandbox.stats.tool_calls[(key.user_id, "getData")] == 5


async def test_two_hundred_concurrent_calls_across_twenty_users_each_see_only_their_rows(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    expected: dict[SessionKey, set[str]] = {}
    for n in range(20):
        regions = [REGIONS[n % 4]] if n % 5 else [REGIONS[n % 4], REGIONS[(n + 1) % 4]]
        sandbox.directory.upsert_embed(f"pool-user-{n}", f"Pool User {n}", attributes={"region": regions})
        expected[key_for(sandbox, f"pool-user-{n}")] = set(regions)
    calls = [(key, i) for i in range(10) for key in expected]

    async def ask(key: SessionKey) -> tuple[SessionKey, set[str]]:
        return key, regions_in(await pool.call_tool(key, "getData", {"prompt": "revenue by region"}))

    answers = await asyncio.gather(*[ask(key) for key, _ in calls])

    assert len(answers) == 200
    for key, seen in answers:
        assert seen == expected[key]
    assert sum(sandbox.stats.sessions_opened.values()) == 20
    assert len({key.user_id for key in expected}) == 20


async def test_dropped_sessions_are_reopened_once_and_no_call_runs_twice(sandbox: Sandbox, pool: SessionPool) -> None:
    key = key_for(sandbox, "dan")
    for _ in range(3):
        await pool.call_tool(key, "getData", {"prompt": "revenue by region"})

    assert sandbox.drop_sessions() >= 1
    results = await asyncio.gather(*[pool.call_tool(key, "getData", {"prompt": "revenue by region"}) for _ in range(8)])

    assert all(regions_in(r) == {"South"} for r in results)
    assert sandbox.stats.sessions_opened[key.user_id] == 2  # the first, and one fresh one for all eight
    assert sandbox.stats.tool_calls[(key.user_id, "getData")] == 11  # each call ran exactly once
    assert pool.stats().expired_total == 1


async def test_a_dropped_session_is_reopened_once_for_a_tool_list_too(sandbox: Sandbox, pool: SessionPool) -> None:
    # `call_tool` and `list_tools` share one retry loop; this fails if the tool list lost it.
    key = key_for(sandbox, "erin")
    first = await pool.list_tools(key)

    assert sandbox.drop_sessions() >= 1
    again = await pool.list_tools(key, refresh=True)

    assert [tool.name for tool in again] == [tool.name for tool in first]
    assert sandbox.stats.sessions_opened[key.user_id] == 2
    assert pool.stats().expired_total == 1


async def test_a_killed_transport_ends_only_that_users_session(sandbox: Sandbox) -> None:
    transport = FaultyTransport()
    try:
        async with SessionPool(api_key=sandbox.config.org_key, protocol="legacy", http_transport=transport) as pool:
            victim, others = key_for(sandbox, "erin"), [key_for(sandbox, u) for u in ("alice", "bob", "carol")]
            for key in [victim, *others]:
                await pool.call_tool(key, "pickModel", {})
            sandbox.set_faults(slow_tool_seconds=0.3, slow_tool_name="getData")

            in_flight = [
                asyncio.create_task(pool.call_tool(k, "getData", {"prompt": "revenue by region"})) for k in others * 3
            ]
            await wait_until(lambda: sandbox.stats.in_flight >= len(in_flight))
            transport.kill(victim.user_id)
            with pytest.raises(McpConnectError):
                await pool.call_tool(victim, "getData", {"prompt": "revenue by region"})

            results = await asyncio.gather(*in_flight)
            assert [regions_in(r) for r in results] == [{"West"}, {"East"}, {"Central"}] * 3

            transport.heal(victim.user_id)
            sandbox.set_faults(slow_tool_seconds=0.0)
            recovered = await pool.call_tool(victim, "getData", {"prompt": "revenue by region"})
            assert regions_in(recovered) == {"West", "East"}
            assert sandbox.stats.sessions_opened[victim.user_id] == 2
            assert all(sandbox.stats.sessions_opened[k.user_id] == 1 for k in others)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("protocol", ["legacy", "modern"])
async def test_a_cancelled_call_is_cancelled_at_omni_too(sandbox: Sandbox, protocol: Any) -> None:
    async with SessionPool(api_key=sandbox.config.org_key, protocol=protocol) as pool:
        key = key_for(sandbox, "bob")
        await pool.call_tool(key, "pickModel", {})
        sandbox.set_faults(slow_tool_seconds=30.0, slow_tool_name="getData")

        call = asyncio.create_task(pool.call_tool(key, "getData", {"prompt": "revenue by region"}))
        await wait_until(lambda: sandbox.stats.in_flight == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        await wait_until(lambda: sandbox.stats.cancelled_tool_calls == [(key.user_id, "getData")])
        sandbox.set_faults(slow_tool_seconds=0.0)
        assert regions_in(await pool.call_tool(key, "getData", {"prompt": "revenue by region"})) == {"East"}
        assert pool.stats().opened_total == 1


async def test_a_call_past_its_deadline_times_out_and_the_session_survives(sandbox: Sandbox, pool: SessionPool) -> None:
    key = key_for(sandbox, "alice")
    sandbox.set_faults(slow_tool_seconds=30.0, slow_tool_name="getData")
    with pytest.raises(ToolTimeout):
        await pool.call_tool(key, "getData", {"prompt": "revenue by region"}, deadline=0.2)
    await wait_until(lambda: len(sandbox.stats.cancelled_tool_calls) == 1)
    sandbox.set_faults(slow_tool_seconds=0.0)
    assert regions_in(await pool.call_tool(key, "getData", {"prompt": "revenue by region"})) == {"West"}
    assert sandbox.stats.sessions_opened[key.user_id] == 1


async def test_the_pool_is_bounded_and_closes_the_least_recently_used_idle_session(sandbox: Sandbox) -> None:
    async with SessionPool(api_key=sandbox.config.org_key, protocol="legacy", max_sessions=2) as pool:
        alice, bob, carol = (key_for(sandbox, u) for u in ("alice", "bob", "carol"))
        await pool.call_tool(alice, "pickModel", {})
        await pool.call_tool(bob, "pickModel", {})
        await pool.call_tool(alice, "pickModel", {})  # bob is now the least recently used
        await pool.call_tool(carol, "pickModel", {})
        assert pool.stats().open == 2
        await pool.call_tool(alice, "pickModel", {})
        await pool.call_tool(bob, "pickModel", {})

    assert sandbox.stats.sessions_opened == {alice.user_id: 1, bob.user_id: 2, carol.user_id: 1}


async def test_a_full_pool_of_busy_sessions_makes_a_new_identity_wait_for_a_free_slot(sandbox: Sandbox) -> None:
    async with SessionPool(api_key=sandbox.config.org_key, protocol="legacy", max_sessions=1) as pool:
        alice, bob = key_for(sandbox, "alice"), key_for(sandbox, "bob")
        sandbox.set_faults(slow_tool_seconds=0.2, slow_tool_name="getData")
        busy = asyncio.create_task(pool.call_tool(alice, "getData", {"prompt": "revenue by region"}))
        await wait_until(lambda: sandbox.stats.in_flight == 1)
        waiting = asyncio.create_task(pool.call_tool(bob, "pickModel", {}))

        assert regions_in(await busy) == {"West"}
        await waiting
        assert pool.stats().open == 1
        assert sandbox.stats.sessions_opened == {alice.user_id: 1, bob.user_id: 1}


async def test_idle_sessions_are_closed_after_idle_seconds(sandbox: Sandbox) -> None:
    now = [1000.0]
    async with SessionPool(
        api_key=sandbox.config.org_key, protocol="legacy", idle_seconds=60, clock=lambda: now[0]
    ) as pool:
        alice, bob = key_for(sandbox, "alice"), key_for(sandbox, "bob")
        await pool.call_tool(alice, "pickModel", {})
        now[0] += 45
        await pool.call_tool(bob, "pickModel", {})
        now[0] += 20

        assert pool.expire_idle() == 1  # alice: idle 65 s; bob: 20 s
        assert pool.stats().open == 1
        await pool.call_tool(bob, "pickModel", {})
        await pool.call_tool(alice, "pickModel", {})
    assert sandbox.stats.sessions_opened == {alice.user_id: 2, bob.user_id: 1}


async def test_tool_lists_are_cached_per_identity_and_refreshed_after_the_ttl(sandbox: Sandbox) -> None:
    transport = FaultyTransport()
    now = [0.0]
    try:
        async with SessionPool(
            api_key=sandbox.config.org_key, http_transport=transport, tool_list_ttl=300, clock=lambda: now[0]
        ) as pool:
            alice, bob = key_for(sandbox, "alice"), key_for(sandbox, "bob")
            first = await pool.list_tools(alice)
            assert await pool.list_tools(alice) is first
            await pool.list_tools(bob)
            assert transport.count("tools/list", alice.user_id) == 1
            assert transport.count("tools/list", bob.user_id) == 1

            now[0] += 301
            await pool.list_tools(alice)
            assert transport.count("tools/list", alice.user_id) == 2
            assert "getData" in [tool.name for tool in first]
    finally:
        await transport.aclose()


async def test_every_request_carries_the_identity_headers_fixed_at_open(sandbox: Sandbox) -> None:
    transport = FaultyTransport()
    try:
        async with SessionPool(api_key=sandbox.config.org_key, protocol="modern", http_transport=transport) as pool:
            key = key_for(sandbox, "carol", topic_name="order_items")
            result = await pool.call_tool(key, "getData", {"prompt": "revenue by region"})
        assert regions_in(result) == {"Central"}
        assert result.structured_content is not None and result.structured_content["topicName"] == "order_items"
        users = {user for user, _ in transport.methods}
        assert users == {key.user_id}
    finally:
        await transport.aclose()


async def test_refusals_become_typed_errors_without_the_api_key_anywhere(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = sandbox.config.org_key
    transport = FaultyTransport()
    errors: list[BaseException] = []
    try:
        async with SessionPool(api_key=secret, protocol="legacy", http_transport=transport) as pool:
            unknown = SessionKey(server=sandbox.mcp_url(), user_id="00000000-0000-4000-8000-000000000000")
            with pytest.raises(McpError) as refused:
                await pool.call_tool(unknown, "pickModel", {})
            errors.append(refused.value)
            assert refused.value.status == 404

            victim = key_for(sandbox, "alice")
            await pool.call_tool(victim, "pickModel", {})
            transport.kill(victim.user_id)
            with pytest.raises(McpConnectError) as dead:
                await pool.call_tool(victim, "pickModel", {})
            errors.append(dead.value)
            texts = [repr(pool), repr(victim), caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors)]
    finally:
        await transport.aclose()
    assert all(secret not in text for text in texts)
    with pytest.raises(ValueError, match="no default user"):
        SessionKey(server=sandbox.mcp_url(), user_id=" ")


async def test_an_unreachable_omni_gives_a_connect_error() -> None:
    async with SessionPool(api_key="k", connect_timeout=2) as pool:
        key = SessionKey(server="http://127.0.0.1:9" + MCP_PATH, user_id="u-1")
        with pytest.raises(McpConnectError, match=re.escape("cannot reach http://127.0.0.1:9/mcp/https")):
            await pool.call_tool(key, "pickModel", {})
