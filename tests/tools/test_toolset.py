"""The toolset against the sandbox: what Claude is offered, and what comes back from each call."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import jsonschema
import pytest
from pydantic import TypeAdapter

from omni_bridge.config import load_settings
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import MemoryArtifactStore, SessionKey, SessionPool, ToolPolicy, Toolset
from tests.sandbox.mcp_helpers import wait_until


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxConfig(job_step_seconds=0.02))
    with box.run_in_thread():
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> Iterator[None]:
    sandbox.stats.reset()
    yield
    sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)


@pytest.fixture
async def pool(sandbox: Sandbox) -> AsyncIterator[SessionPool]:
    async with SessionPool(api_key=sandbox.config.org_key) as pool:
        yield pool


def toolset(
    pool: SessionPool, sandbox: Sandbox, user: str, *, policy: ToolPolicy | None = None, **scope: Any
) -> Toolset:
    key = SessionKey(server=sandbox.mcp_url(), user_id=embed_user_id(user), **scope)
    return Toolset(pool, key, artifacts=MemoryArtifactStore(), policy=policy)


def admin_id(sandbox: Sandbox) -> str:
    return next(u.id for u in sandbox.directory.all_users() if u.is_org_admin)


async def test_every_sandbox_tool_converts_to_a_definition_the_anthropic_sdk_accepts(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    every_selector = ToolPolicy(topic_selection="model")  # by default pickTopic is left to the bridge's code
    definitions = await toolset(pool, sandbox, "alice", policy=every_selector).definitions()

    names = [d["name"] for d in definitions]
    assert names == ["pickModel", "pickTopic", "getData", "askOmni", "checkStatus", "searchOmniDocs", "read_result"]
    assert "getJobChartPage" in [tool.name for tool in await pool.list_tools(toolset(pool, sandbox, "alice").key)]
    adapter = TypeAdapter(anthropic.types.ToolParam)
    for definition in definitions:
        adapter.validate_python(definition, strict=True)
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", definition["name"])
        assert definition["input_schema"]["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(definition["input_schema"])
        assert definition["description"]


async def test_selectors_are_hidden_when_model_and_topic_are_pinned_unless_configured(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    model_id = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
    by_model = ToolPolicy(topic_selection="model")
    pinned_model = await toolset(pool, sandbox, "alice", policy=by_model, model_id=model_id).definitions()
    pinned_both = await toolset(pool, sandbox, "alice", model_id=model_id, topic_name="order_items").definitions()
    shown = await toolset(
        pool, sandbox, "alice", policy=ToolPolicy(hide_selectors=False), model_id=model_id, topic_name="order_items"
    ).definitions()

    assert "pickModel" not in {d["name"] for d in pinned_model} and "pickTopic" in {d["name"] for d in pinned_model}
    assert not {"pickModel", "pickTopic"} & {d["name"] for d in pinned_both}
    assert {"pickModel", "pickTopic"} <= {d["name"] for d in shown}


async def test_allow_and_deny_lists_decide_what_is_offered_and_what_may_run(
    sandbox: Sandbox, pool: SessionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_TOOLS_ALLOW", "getData, askOmni, checkStatus")
    monkeypatch.setenv("BRIDGE_TOOLS_DENY", "askOmni")
    policy = ToolPolicy.from_settings(load_settings(None))
    tools = toolset(pool, sandbox, "bob", policy=policy)

    assert [d["name"] for d in await tools.definitions()] == ["getData", "checkStatus", "read_result"]
    refused = await tools.call("askOmni", {"prompt": "revenue by region"})
    made_up = await tools.call("dropTables", {})

    assert refused.is_error and "no tool named 'askOmni'" in refused.result.text
    assert made_up.is_error
    assert sandbox.stats.tool_calls[(embed_user_id("bob"), "askOmni")] == 0


async def test_get_job_chart_page_is_never_offered_to_the_model_nor_run_for_it_whatever_the_allow_list(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    key = SessionKey(server=sandbox.mcp_url(), user_id=embed_user_id("carol"))
    listed = [tool.name for tool in await pool.list_tools(key)]
    allowing = Toolset(
        pool, key, artifacts=MemoryArtifactStore(), policy=ToolPolicy(allow=frozenset({"getJobChartPage"}))
    )
    by_default = Toolset(pool, key, artifacts=MemoryArtifactStore())

    assert "getJobChartPage" in listed  # Omni lists it for the user...
    assert [d["name"] for d in await allowing.definitions()] == ["read_result"]  # ...the model never sees it
    assert "getJobChartPage" not in [d["name"] for d in await by_default.definitions()]
    refused = await allowing.call("getJobChartPage", {"jobId": "00000000-0000-4000-8000-000000000000"})
    assert refused.is_error and "no tool named 'getJobChartPage'" in refused.result.text
    assert sandbox.stats.tool_calls[(embed_user_id("carol"), "getJobChartPage")] == 0


async def test_a_call_keeps_omnis_structured_content_for_the_bridges_own_code(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    tools = toolset(pool, sandbox, "alice")
    submitted = await tools.call("askOmni", {"prompt": "revenue by region"})
    refused = await tools.call("checkStatus", {"jobId": "not-a-uuid"})

    assert submitted.structured is not None and submitted.structured["state"] == "QUEUED"
    assert submitted.structured["jobId"] in submitted.result.text
    assert refused.structured is not None and refused.structured["error"]["status"] == 400


async def test_a_fifty_thousand_row_result_reaches_the_model_within_budget_and_read_result_pages_the_rest(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    key = SessionKey(server=sandbox.mcp_url(), user_id=admin_id(sandbox))
    tools = Toolset(pool, key, artifacts=MemoryArtifactStore(), policy=ToolPolicy(budget_tokens=4000))
    question = {"prompt": "revenue by product by state by month", "limit": 50000}

    first = await tools.call("getData", question)
    full = await pool.call_tool(key, "getData", question)  # the same query, straight from Omni, to compare

    assert first.result.row_count == 50_000 and first.result.artifact_id is not None
    assert len(first.result.text) <= 4000 * 4
    expected = list(csv.reader(io.StringIO(full.structured_content["csv"])))[1:]
    seen = first.result.shown_rows
    rows: list[list[str]] = []
    pages = 0
    while True:
        page = await tools.call("read_result", {"result_id": first.result.artifact_id, "offset": seen, "limit": 1000})
        assert not page.is_error and len(page.result.text) <= 4000 * 4
        body = page.result.text.split("```csv\n", 1)[1].split("```", 1)[0]
        got = list(csv.reader(io.StringIO(body)))[1:]
        rows.extend(got)
        seen += len(got)
        pages += 1
        if "next_offset" not in page.result.text or seen >= 50_000:
            break
    assert rows == expected[first.result.shown_rows :]
    assert pages > 10


async def test_read_result_never_reaches_another_users_result(sandbox: Sandbox, pool: SessionPool) -> None:
    shared = MemoryArtifactStore()
    alice = Toolset(pool, SessionKey(server=sandbox.mcp_url(), user_id=embed_user_id("alice")), artifacts=shared)
    bob = Toolset(pool, SessionKey(server=sandbox.mcp_url(), user_id=embed_user_id("bob")), artifacts=shared)

    mine = await alice.call("getData", {"prompt": "revenue by product"})
    assert mine.result.artifact_id is not None
    theirs = await bob.call("read_result", {"result_id": mine.result.artifact_id})
    own = await alice.call("read_result", {"result_id": mine.result.artifact_id})

    assert theirs.is_error and "No result" in theirs.result.text
    assert not own.is_error


async def test_a_slow_tool_comes_back_as_an_error_result_and_is_cancelled_at_omni(
    sandbox: Sandbox, pool: SessionPool
) -> None:
    tools = toolset(pool, sandbox, "carol")
    sandbox.set_faults(slow_tool_seconds=30.0, slow_tool_name="getData")

    outcome = await tools.call("getData", {"prompt": "revenue by region"}, deadline=0.2)

    assert outcome.is_error and "did not answer within 0.2 s" in outcome.result.text
    await wait_until(lambda: len(sandbox.stats.cancelled_tool_calls) == 1)
    block = outcome.tool_result_block("toolu_1")
    assert block["is_error"] is True and block["tool_use_id"] == "toolu_1"


async def test_omnis_refusals_pass_through_as_error_results(sandbox: Sandbox, pool: SessionPool) -> None:
    tools = toolset(pool, sandbox, "nora")  # no region attribute: the access filter refuses the query
    outcome = await tools.call("getData", {"prompt": "revenue by region"})
    bad_arguments = await tools.call("getData", {"question": "wrong field"})
    not_an_object = await tools.call("getData", ["revenue"])  # type: ignore[arg-type]

    assert outcome.is_error and outcome.result.text.startswith(("400", "403"))
    assert bad_arguments.is_error and "Invalid arguments" in bad_arguments.result.text
    assert not_an_object.is_error and "JSON object" in not_an_object.result.text


async def test_a_small_table_is_shown_whole_and_charted(sandbox: Sandbox, pool: SessionPool) -> None:
    tools = toolset(pool, sandbox, "erin")
    outcome = await tools.call("getData", {"prompt": "revenue by region"})

    assert not outcome.is_error
    assert "West" in outcome.result.text and "East" in outcome.result.text and "read_result" not in outcome.result.text
    assert outcome.result.chart is not None
    assert [p.x for p in outcome.result.chart.series[0].points] in (["West", "East"], ["East", "West"])
