"""`OmniConnection`: the pool, resolver and sandbox every integration shares."""

from __future__ import annotations

import pytest

from omni_bridge.agent import OmniConnection
from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError, IdentityError
from omni_bridge.integrations import McpProxy
from omni_bridge.sandbox import Sandbox, embed_user_id
from tests.integrations.helpers import REGIONS


async def test_with_no_omni_configured_it_runs_the_sandbox_in_process() -> None:
    settings = load_settings(env_file=None, omni_base_url=None, omni_api_key=None)
    async with OmniConnection.from_settings(settings) as omni:
        sandbox = omni.sandbox
        assert sandbox is not None
        assert omni.mcp_url == sandbox.mcp_url()
        outcome = await (await omni.toolset("alice")).call("getData", {"prompt": "revenue by region"})

    assert not outcome.is_error and REGIONS["alice"] in outcome.result.text
    assert sandbox.stats.sessions_opened == {embed_user_id("alice"): 1}
    assert sandbox.url is None  # stopped with the connection


async def test_end_users_are_resolved_by_external_id_and_an_unknown_one_is_refused(omni: OmniConnection) -> None:
    key = omni.session_key(await omni.resolve("bob"))

    assert key.user_id == embed_user_id("bob") and key.server == omni.mcp_url
    with pytest.raises(IdentityError, match="no embed user with external id 'mallory'"):
        await omni.resolve("mallory")


async def test_an_omni_url_without_a_key_is_refused_before_anything_opens() -> None:
    with pytest.raises(ConfigError, match="OMNI_API_KEY"):
        OmniConnection(base_url="https://acme.omniapp.co")


async def test_the_mcp_endpoint_alone_names_the_instance(sandbox: Sandbox) -> None:
    async with OmniConnection(mcp_url=sandbox.mcp_url(), api_key=sandbox.config.org_key) as omni:
        assert omni.base_url == sandbox.url
        assert (await omni.resolve("carol")).user_id == embed_user_id("carol")


def test_reprs_never_show_the_api_key(sandbox: Sandbox) -> None:
    omni = OmniConnection(base_url="https://acme.omniapp.co", api_key="secret-org-key-42")

    assert "secret-org-key-42" not in repr(omni) + repr(McpProxy(omni))
