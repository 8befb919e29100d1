"""Per-user embed MCP tokens (`auth="embed_token"`) against the sandbox's grant, over loopback HTTP.

What the strategy promises: one token per user, minted once and reused by every call until shortly before it
expires; a token Omni refuses (401) is minted again and the request sent once more, so the call runs exactly once;
no `X-MCP-User-ID` is sent; and neither the embed secret nor a token shows up in a log line, repr or error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from omni_bridge.exceptions import McpError, ToolTimeout
from omni_bridge.sandbox import EMBED_MCP_PATH, Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import (
    EmbedPrincipal,
    EmbedTokenAuth,
    EmbedTokenError,
    EmbedTokenMinter,
    SessionKey,
    SessionPool,
)
from tests.tools.http_faults import FaultyTransport
from tests.tools.test_pool import regions_in

REVENUE = {"prompt": "revenue by region"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxConfig(job_step_seconds=0.0, embed_token_seconds=100))
    with box.run_in_thread():
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> None:
    sandbox.stats.reset()


def token_url(sandbox: Sandbox) -> str:
    assert sandbox.url is not None
    return sandbox.url + "/oauth/token"


def key(sandbox: Sandbox, external_id: str, *, path: str | None = None, **profile: Any) -> SessionKey:
    server = sandbox.mcp_url() if path is None else f"{sandbox.url}{path}"
    principal = EmbedPrincipal.of(external_id, **profile)
    return SessionKey(server=server, user_id=embed_user_id(external_id), principal=principal)


@pytest.fixture(params=["legacy", "modern"])
async def pool(sandbox: Sandbox, request: pytest.FixtureRequest) -> AsyncIterator[SessionPool]:
    options: dict[str, Any] = {"embed_secret": sandbox.config.embed_secret, "token_url": token_url(sandbox)}
    async with SessionPool(auth="embed_token", protocol=request.param, **options) as pool:
        yield pool


def minted(pool: SessionPool) -> int:
    assert isinstance(pool.auth, EmbedTokenAuth)
    return pool.auth.minter.minted_total


async def test_one_token_per_user_serves_many_concurrent_calls(sandbox: Sandbox, pool: SessionPool) -> None:
    alice, bob = key(sandbox, "alice"), key(sandbox, "bob")
    results = await asyncio.gather(*[pool.call_tool(k, "getData", REVENUE) for k in [alice, bob] * 10])

    assert [regions_in(r) for r in results] == [{"West"}, {"East"}] * 10
    assert minted(pool) == 2 and sandbox.stats.counts["oauth.tokens_issued"] == 2  # one flight per user
    await pool.call_tool(alice, "pickModel", {})
    assert sandbox.stats.counts["oauth.tokens_issued"] == 2


@pytest.mark.parametrize("knob", ["revoke_embed_tokens", "expire_embed_tokens"])
async def test_a_refused_token_is_minted_again_and_the_call_runs_once(
    sandbox: Sandbox, pool: SessionPool, knob: str
) -> None:
    carol = key(sandbox, "carol")
    assert regions_in(await pool.call_tool(carol, "getData", REVENUE)) == {"Central"}
    assert getattr(sandbox, knob)() >= 1

    again = await pool.call_tool(carol, "getData", REVENUE)
    tools = await pool.list_tools(carol, refresh=True)

    assert regions_in(again) == {"Central"} and "getData" in [t.name for t in tools]
    assert sandbox.stats.tool_calls[(carol.user_id, "getData")] == 2  # each call ran exactly once
    assert sandbox.stats.counts["mcp.refused.401"] >= 1 and minted(pool) == 2
    assert pool.stats().opened_total == 1  # the session outlived its token


async def test_a_401_answered_with_a_new_token_is_not_the_calls_failure(sandbox: Sandbox, pool: SessionPool) -> None:
    bob = key(sandbox, "bob")
    await pool.call_tool(bob, "pickModel", {})
    sandbox.revoke_embed_tokens()
    sandbox.set_faults(slow_tool_seconds=5.0, slow_tool_name="getData")
    try:
        with pytest.raises(ToolTimeout) as timed_out:
            await pool.call_tool(bob, "getData", REVENUE, deadline=0.5)
    finally:
        sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)
    # The call timed out on the renewed token; the 401 before it was the auth flow's, not this error's.
    assert timed_out.value.status is None and sandbox.stats.counts["mcp.refused.401"] >= 1


async def test_a_second_401_in_a_row_is_returned_not_retried_again() -> None:
    # Tokens that are dead on arrival: the renewed one is refused too, and that refusal is the answer.
    box = Sandbox(SandboxConfig(embed_token_seconds=1e-6))
    async with box.serve() as url:
        options: dict[str, Any] = {"embed_secret": box.config.embed_secret, "token_url": url + "/oauth/token"}
        async with SessionPool(auth="embed_token", protocol="modern", **options) as pool:
            with pytest.raises(McpError) as refused:
                await pool.call_tool(key(box, "alice"), "getData", REVENUE)
            assert minted(pool) == 2  # the open's token, and the one minted again after the 401
    assert refused.value.status == 401 and "expired" in str(refused.value)
    assert box.stats.counts["mcp.refused.401"] == 2 and box.stats.tool_calls[(embed_user_id("alice"), "getData")] == 0


async def test_a_token_is_renewed_shortly_before_it_expires_without_a_refusal(sandbox: Sandbox) -> None:
    now = [1000.0]
    async with httpx2.AsyncHTTPTransport() as transport:
        minter = EmbedTokenMinter(
            token_url(sandbox), SecretStr(sandbox.config.embed_secret), transport=transport, clock=lambda: now[0]
        )
        dan = EmbedPrincipal.of("dan")
        first = await minter.token(dan)
        now[0] += 85  # of 100 s: not yet due (renewed within the last tenth)
        assert (await minter.token(dan)).get_secret_value() == first.get_secret_value()
        now[0] += 6
        renewed = await minter.token(dan)
    assert renewed.get_secret_value() != first.get_secret_value() and minter.minted_total == 2


async def test_no_user_header_is_sent_and_the_embed_mcp_path_works_too(sandbox: Sandbox) -> None:
    transport = FaultyTransport()
    try:
        secret, url = sandbox.config.embed_secret, token_url(sandbox)
        async with SessionPool(
            auth="embed_token", http_transport=transport, embed_secret=secret, token_url=url
        ) as pool:
            erin = key(sandbox, "erin", path=EMBED_MCP_PATH)
            assert regions_in(await pool.call_tool(erin, "getData", REVENUE)) == {"West", "East"}
        assert {user for user, _ in transport.methods} == {""}  # no X-MCP-User-ID on any request
    finally:
        await transport.aclose()


async def test_a_changed_role_gets_its_own_token_session_and_tool_list(sandbox: Sandbox, pool: SessionPool) -> None:
    profile: dict[str, Any] = {"name": "Rita", "user_attributes": {"region": "West"}}
    querier = key(sandbox, "roles-test", **profile, model_roles={"m": "QUERIER"})
    viewer = key(sandbox, "roles-test", **profile, model_roles={"m": "VIEWER"})
    querier_tools = [t.name for t in await pool.list_tools(querier)]
    viewer_tools = [t.name for t in await pool.list_tools(viewer)]
    assert "getData" in querier_tools and "getData" not in viewer_tools
    assert querier.user_id == viewer.user_id and querier != viewer and minted(pool) == 2


async def test_a_wrong_embed_secret_is_a_clear_error_with_no_secret_or_token_anywhere(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "a-wrong-embed-secret-of-enough-length-0123456789"
    async with SessionPool(auth="embed_token", embed_secret=wrong, token_url=token_url(sandbox)) as pool:
        with pytest.raises(EmbedTokenError) as refused:
            await pool.call_tool(key(sandbox, "alice"), "getData", REVENUE)
    assert isinstance(refused.value, McpError) and refused.value.status == 400
    assert "invalid_grant" in str(refused.value) and "signature" in str(refused.value)
    assert sandbox.stats.tool_calls[(embed_user_id("alice"), "getData")] == 0
    assert wrong not in caplog.text + str(refused.value) + repr(refused.value) + repr(pool)


async def test_secrets_and_tokens_stay_out_of_logs_reprs_and_errors(
    sandbox: Sandbox, pool: SessionPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = key(sandbox, "alice")
    await pool.call_tool(alice, "getData", REVENUE)
    sandbox.revoke_embed_tokens()
    await pool.call_tool(alice, "getData", REVENUE)  # re-minted: both tokens went through the logs' reach
    minter = pool.auth.minter if isinstance(pool.auth, EmbedTokenAuth) else None
    assert minter is not None and alice.principal is not None
    token = (await minter.token(alice.principal)).get_secret_value()
    shown = caplog.text + repr(pool) + repr(minter) + repr(pool.auth) + repr(alice) + repr(alice.principal)
    assert "minted a new one" in caplog.text  # the renewal was logged, by the principal's digest only
    for secret in (sandbox.config.embed_secret, token, "alice", alice.user_id):
        assert secret not in shown, secret
