"""`OmniConnection` as the one assembly of "Omni for user X", and the `Bridge` built on it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from omni_bridge.agent import SANDBOX_SERVER, Bridge, Conversation, EndUser, OmniConnection
from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import IdentityError
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from tests.conftest import Served


@pytest.fixture(scope="module")
def quick() -> Iterator[Served]:
    """A sandbox of this module's own (its counters are read), whose AI Jobs finish almost at once."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.0))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


def embedded() -> Settings:
    """No Omni configured and no Anthropic key: the embedded sandbox and the `omni` engine."""
    return load_settings(env_file=None, omni_base_url=None, omni_api_key=None, anthropic_api_key=None)


def remote(served: Served, **overrides: Any) -> Settings:
    return load_settings(
        env_file=None, omni_base_url=served.url, omni_api_key=served.org_key, anthropic_api_key=None, **overrides
    )


def count(served: Served, name: str) -> int:
    return served.sandbox.stats.counts[f"rest.{name}"]


def test_the_connection_loads_without_the_anthropic_sdk() -> None:
    code = "import sys; from omni_bridge.agent import OmniConnection; assert 'anthropic' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_bridge_and_a_proxy_connection_label_embedded_sandbox_identities_alike() -> None:
    settings = embedded()
    async with Bridge(settings) as bridge, OmniConnection.from_settings(settings) as omni:
        assert bridge.sandbox is not None and omni.sandbox is not None
        assert bridge.connection.server == omni.server == SANDBOX_SERVER
        by_bridge, by_connection = await bridge.resolve("alice"), await omni.resolve("alice")

    assert by_bridge == by_connection
    assert by_bridge.server == SANDBOX_SERVER and by_bridge.user_id == embed_user_id("alice")


async def test_both_upsert_exactly_when_the_end_user_carries_a_profile(quick: Served) -> None:
    settings = remote(quick)
    async with Bridge(settings) as bridge, OmniConnection.from_settings(settings) as omni:
        for resolve in (bridge.resolve, omni.resolve):
            unknown = f"unknown-{uuid.uuid4().hex}"
            upserts = count(quick, "generate_session")
            with pytest.raises(IdentityError, match="no embed user with external id"):
                await resolve(unknown)
            with pytest.raises(IdentityError, match="no default user"):
                await resolve("")
            assert count(quick, "generate_session") == upserts  # refused without an upsert

            new = EndUser(external_id=f"new-{uuid.uuid4().hex}", name="New User", user_attributes={"region": "West"})
            identity = await resolve(new)
            assert count(quick, "generate_session") == upserts + 1
            assert identity.user_id == embed_user_id(new.external_id) and identity.server == quick.url


async def test_the_reverse_lookup_names_the_external_id_and_is_cached(quick: Served) -> None:
    async with OmniConnection.from_settings(remote(quick)) as omni:
        asked = count(quick, "scim_get")
        assert await omni.external_id_for(embed_user_id("bob")) == "bob"
        assert await omni.external_id_for(embed_user_id("bob")) == "bob"
        assert count(quick, "scim_get") == asked + 1

        assert await omni.external_id_for(str(uuid.uuid4())) is None


async def test_a_bridge_uses_an_open_connection_it_is_given_and_leaves_it_open(quick: Served) -> None:
    settings = remote(quick)
    async with OmniConnection.from_settings(settings) as omni:
        async with Bridge(settings, connection=omni) as bridge:
            assert bridge.connection is omni and bridge.rest is omni.rest and bridge.pool is omni.pool
            message = await bridge.answer(user="alice", question="revenue by region")
            assert message.outcome == "completed"
        assert omni.is_open
        assert (await omni.resolve("alice")).user_id == embed_user_id("alice")


async def test_a_run_can_save_through_the_callers_own_save(quick: Served) -> None:
    saved: list[str] = []

    async def save(conversation: Conversation) -> None:
        saved.append(conversation.id)

    async with Bridge(remote(quick)) as bridge:
        message = await bridge.answer(user="alice", question="revenue by region", save=save)

    assert message.outcome == "completed"
    assert saved and set(saved) == {message.conversation_id}


async def test_the_lock_map_is_empty_once_the_conversations_are_answered(quick: Served) -> None:
    async with Bridge(remote(quick)) as bridge:
        answers = await asyncio.gather(
            *(bridge.answer(user=user, question="revenue by region") for user in ("alice", "bob", "carol") * 4)
        )
        assert {message.outcome for message in answers} == {"completed"}
        assert len({message.conversation_id for message in answers}) == 12

        assert len(bridge._locks) == 0
