"""`OmniConnection` under each auth strategy: the embedded sandbox, end users' roles, and what is refused.

The sandbox knows its own embed secret, so `OMNI_AUTH=embed_token` works with no Omni and no secret configured;
against a named Omni the secret is required. Roles given on an `EndUser` reach Omni either way (generate-session's
`modelRoles`/`connectionRoles` with the org key, the token's claims with embed tokens) and shape the tool list.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from omni_bridge.agent import EndUser, OmniConnection
from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.sandbox import EMBED_MCP_PATH, Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import EmbedTokenAuth, EmbedTokenError, OrgKeyAuth
from tests.conftest import Served

AUTH = pytest.mark.parametrize("auth", ["org_key", "embed_token"])


@pytest.fixture(scope="module")
def box() -> Iterator[Served]:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.0))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


def connect(served: Served, auth: str, **options: Any) -> OmniConnection:
    secret = served.sandbox.config.embed_secret
    return OmniConnection(base_url=served.url, api_key=served.org_key, auth=auth, embed_secret=secret, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/mcp/https", EMBED_MCP_PATH])
async def test_the_embedded_sandbox_serves_embed_tokens_with_its_own_secret(path: str) -> None:
    settings = load_settings(
        env_file=None, omni_base_url=None, omni_api_key=None, omni_auth="embed_token", omni_mcp_path=path
    )
    async with OmniConnection.from_settings(settings) as omni:
        sandbox = omni.sandbox
        assert sandbox is not None and isinstance(omni.pool.auth, EmbedTokenAuth) and omni.mcp_url.endswith(path)
        for user, region, other in (("alice", "West", "East"), ("bob", "East", "West"), ("alice", "West", "East")):
            outcome = await (await omni.toolset(user)).call("getData", {"prompt": "revenue by region"})
            assert not outcome.is_error and region in outcome.result.text and other not in outcome.result.text
        assert sandbox.stats.counts["oauth.tokens_issued"] == 2 and omni.pool.auth.minter.minted_total == 2
    assert "auth=embed_token" in repr(omni)


@AUTH
async def test_a_user_upserted_with_another_role_gets_the_tool_list_of_that_role_at_once(
    box: Served, auth: str
) -> None:
    external_id = f"promoted-{uuid.uuid4().hex[:8]}"
    profile: dict[str, Any] = {"name": "P", "user_attributes": {"region": "East"}}
    async with connect(box, auth) as omni:
        as_viewer = EndUser(external_id=external_id, **profile, model_roles={"m": "VIEWER"})
        as_querier = EndUser(external_id=external_id, **profile, model_roles={"m": "QUERIER"})
        before = [tool["name"] for tool in await (await omni.toolset(as_viewer)).definitions()]
        after = await (await omni.toolset(as_querier)).call("getData", {"prompt": "revenue by region"})
    assert "getData" not in before
    assert not after.is_error and "East" in after.result.text  # not the Viewer's cached list


@AUTH
async def test_an_end_users_roles_reach_omni_and_shape_the_tool_list(box: Served, auth: str) -> None:
    external_id = f"viewer-{uuid.uuid4().hex[:8]}"
    viewer = EndUser(external_id=external_id, name="V", user_attributes={"region": "West"}, model_roles={"m": "VIEWER"})
    async with connect(box, auth) as omni:
        tools = await (await omni.toolset(viewer)).definitions()
        names = [tool["name"] for tool in tools]
        refused = await (await omni.toolset(viewer)).call("getData", {"prompt": "revenue by region"})
    assert box.sandbox.directory.get(embed_user_id(external_id)).role == "VIEWER"
    assert "getData" not in names and "askOmni" in names
    assert refused.is_error and "no tool named 'getData'" in refused.result.text  # refused before Omni
    assert box.sandbox.stats.tool_calls[(embed_user_id(external_id), "getData")] == 0


async def test_under_embed_tokens_a_key_without_its_user_is_refused(box: Served) -> None:
    async with connect(box, "embed_token") as omni:
        with pytest.raises(EmbedTokenError, match="external id"):
            await omni.pool.list_tools(omni.key(embed_user_id("alice")))  # an Omni id alone names no one to mint for
        assert isinstance(omni.pool.auth, EmbedTokenAuth)
    async with connect(box, "org_key") as omni:
        assert isinstance(omni.pool.auth, OrgKeyAuth)


def test_embed_tokens_against_a_named_omni_need_the_secret() -> None:
    with pytest.raises(ConfigError, match="OMNI_EMBED_SECRET"):
        OmniConnection(base_url="https://acme.omniapp.co", api_key="k", auth="embed_token")
    settings = load_settings(
        env_file=None, omni_base_url="https://acme.omniapp.co", omni_api_key="k", omni_auth="embed_token"
    )
    with pytest.raises(ConfigError, match="OMNI_EMBED_SECRET"):
        OmniConnection.from_settings(settings)
    shown = repr(
        OmniConnection(
            base_url="https://acme.omniapp.co", api_key="k", auth="embed_token", embed_secret="embed-secret-never-shown"
        )
    )
    assert "embed-secret-never-shown" not in shown
