"""Auto-pinning (`omni_bridge.tools._auto_pin`): a user's only model pinned from code, the topic picked in the
query's own turn, and the LLM round trips that saves, counted at the fake Messages API.

The sandbox's users see both demo models unless their `modelRoles` set one to `NO_ACCESS`; each test makes its
own embed users (unique external ids), so the session-wide sandbox's other users are left as they are.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from omni_bridge.agent import Bridge, EndUser
from omni_bridge.sandbox._semantic import ECOMMERCE, INVENTORY
from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, offered_tools_in_order
from omni_bridge.tools import listed_model_ids, picked_topic
from tests.agent.claude_helpers import settings_for
from tests.conftest import Served

BENCH_AGENT = Path(__file__).resolve().parents[2] / "bench" / "agent.py"


def _bench_careful_model() -> Any:
    """The benchmark's careful-model responder (bench/agent.py is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_agent", BENCH_AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    sys.path.insert(0, str(BENCH_AGENT.parent))  # as when run as a script: it imports `_serve` from its folder
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH_AGENT.parent))
    return module.careful_model


RESPONDERS = {"offered-only": offered_tools_in_order(), "careful": _bench_careful_model()}


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    yield


def seeing(*models: str) -> EndUser:
    """A new embed user who may see only `models` (the others' `modelRoles` are `NO_ACCESS`)."""
    hidden = {m.id: "NO_ACCESS" for m in (ECOMMERCE, INVENTORY) if m.id not in models}
    return EndUser(
        external_id=f"pin-{uuid.uuid4().hex[:10]}",
        name="Pin Test",
        user_attributes={"region": "West"},
        model_roles=hidden or None,
    )


def offered(request: CapturedRequest) -> set[str]:
    return set(request.tool_names)


def calls(served: Served, tool: str) -> int:
    return sum(n for (_, name), n in served.sandbox.stats.tool_calls.items() if name == tool)


def arguments_of(served: Served, tool: str) -> list[dict[str, Any]]:
    return [arguments for _, name, arguments in served.sandbox.stats.tool_arguments if name == tool]


# --- the rules ------------------------------------------------------------------------------------------------


async def test_a_user_who_sees_one_model_gets_it_pinned_and_the_header_sent(served: Served) -> None:
    user = seeing(ECOMMERCE.id)
    fake = FakeAnthropic(responder=offered_tools_in_order())
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        first = await bridge.answer(user=user, question="total revenue this year")
        await bridge.answer(user=user, question="revenue by region")
        toolset = await bridge.connection.toolset(user)
        # The session carries X-MCP-Model-ID: the sandbox refuses another model on it, naming the header.
        other = await toolset.call("getData", {"prompt": "how many products", "modelId": INVENTORY.id})

    assert first.outcome == "completed"
    assert toolset.key.model_id == ECOMMERCE.id
    assert other.is_error and "X-MCP-Model-ID" in other.result.content[0]["text"]
    assert len(fake.requests) == 4  # two questions, each getData then the answer
    assert all(not offered(r) & {"pickModel", "pickTopic"} for r in fake.requests)
    assert calls(served, "pickModel") == 1  # asked from code once for the user, then cached


async def test_with_several_models_nothing_is_pinned_and_pick_model_is_offered(served: Served) -> None:
    user = seeing(ECOMMERCE.id, INVENTORY.id)
    fake = FakeAnthropic(responder=offered_tools_in_order())
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        message = await bridge.answer(user=user, question="total revenue this year")
        toolset = await bridge.connection.toolset(user)

    assert message.outcome == "completed"
    assert toolset.key.model_id is None
    assert "pickModel" in offered(fake.requests[0]) and "pickTopic" not in offered(fake.requests[0])
    assert len(fake.requests) == 3  # pickModel, getData (its topic picked from code), the answer
    assert calls(served, "pickTopic") == 1
    assert arguments_of(served, "getData") == [{"prompt": "total revenue this year", "topicName": "order_items"}]


async def test_a_pinned_model_setting_wins_and_no_listing_is_made(served: Served) -> None:
    user = seeing(ECOMMERCE.id, INVENTORY.id)
    fake = FakeAnthropic(responder=offered_tools_in_order())
    async with fake.serve() as url, Bridge(settings_for(served, url, omni_model_id=INVENTORY.id)) as bridge:
        await bridge.answer(user=user, question="how many products per category")
        toolset = await bridge.connection.toolset(user)

    assert toolset.key.model_id == INVENTORY.id
    assert calls(served, "pickModel") == 0
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("overrides", "round_trips", "shown"),
    [
        ({"bridge_auto_pin_model": False}, 3, {"pickModel"}),
        ({"bridge_topic_selection": "model"}, 3, {"pickTopic"}),
        ({"bridge_topic_selection": "omni"}, 2, set()),
    ],
)
async def test_settings_turn_each_rule_off(
    served: Served, overrides: dict[str, Any], round_trips: int, shown: set[str]
) -> None:
    user = seeing(ECOMMERCE.id)
    fake = FakeAnthropic(responder=offered_tools_in_order())
    async with fake.serve() as url, Bridge(settings_for(served, url, **overrides)) as bridge:
        message = await bridge.answer(user=user, question="total revenue this year")

    assert message.outcome == "completed"
    assert offered(fake.requests[0]) & {"pickModel", "pickTopic"} == shown
    assert len(fake.requests) == round_trips
    if overrides.get("bridge_topic_selection") == "omni":  # getData as asked: Omni (here the sandbox) picks
        assert calls(served, "pickTopic") == 0
        assert arguments_of(served, "getData") == [{"prompt": "total revenue this year"}]


async def test_two_users_with_different_visible_models_each_get_their_own(served: Served) -> None:
    shop, catalog = seeing(ECOMMERCE.id), seeing(INVENTORY.id)
    fake = FakeAnthropic(responder=offered_tools_in_order())
    async with fake.serve() as url, Bridge(settings_for(served, url)) as bridge:
        await bridge.answer(user=shop, question="total revenue this year")
        await bridge.answer(user=catalog, question="how many products per category")
        keys = [(await bridge.connection.toolset(user)).key for user in (shop, catalog)]

    assert [key.model_id for key in keys] == [ECOMMERCE.id, INVENTORY.id]
    assert len(fake.requests) == 4
    results = [text for r in fake.requests for text in r.tool_result_texts]
    assert any("from topic order_items" in t for t in results) and any("from topic products" in t for t in results)


# --- round trips on both responders ------------------------------------------------------------------------


@pytest.mark.parametrize("responder", RESPONDERS)
@pytest.mark.parametrize(("pinned", "most"), [({}, 3), ({"omni_model_id": ECOMMERCE.id}, 2)])
async def test_a_single_query_question_needs_at_most_three_round_trips(
    served: Served, responder: str, pinned: dict[str, Any], most: int
) -> None:
    def respond(request: CapturedRequest) -> Reply:
        reply: Reply = RESPONDERS[responder](request)
        return reply

    fake = FakeAnthropic(responder=respond)
    async with fake.serve() as url, Bridge(settings_for(served, url, **pinned)) as bridge:
        await bridge.answer(user="alice", question="total revenue this year")  # alice sees both models
        before = len(fake.requests)
        message = await bridge.answer(user="alice", question="revenue by region")

    assert message.outcome == "completed" and "```csv" in message.text
    assert len(fake.requests) - before == most


# --- reading Omni's answers ---------------------------------------------------------------------------------


def result(structured: dict[str, Any] | None = None, text: str = "", *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=error
    )


def test_model_listings_are_read_from_structured_content_or_json_text_and_nothing_else() -> None:
    assert listed_model_ids(result({"models": [{"id": "m1", "name": "a"}]})) == ["m1"]
    assert listed_model_ids(result(text='[{"modelId": "m1"}, {"modelId": "m2"}]')) == ["m1", "m2"]
    assert listed_model_ids(result(text="Models you can query:\n- Shop: id m1")) is None  # prose: not read
    assert listed_model_ids(result({"models": [{"id": "m1"}, {"name": "no id"}]})) is None
    assert listed_model_ids(result({"models": [{"id": "m1"}]}, error=True)) is None


def test_a_picked_topic_is_read_by_the_sandbox_and_the_rest_api_names() -> None:
    assert picked_topic(result({"modelId": "m1", "topicName": "order_items"})) == "order_items"
    assert picked_topic(result(text='{"topicId": "customers"}')) == "customers"
    assert picked_topic(result(text="Best topic: order_items")) is None
