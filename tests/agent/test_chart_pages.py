"""Omni's chart page, fetched by the bridge's own code once an AI job completes, in both engines, over loopback.

The claude engine runs against the scripted fake Messages API (the model asks `askOmni`, then `checkStatus` until
the job is COMPLETE); the omni engine runs AI Jobs over REST. Both fetch `getJobChartPage` on the user's pooled MCP
session, and neither lets the model see the tool or the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from omni_bridge.agent import AssistantMessage, Bridge, ChartPagePart, ChartPageReady, Event, FinalMessage
from omni_bridge.config import load_settings
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ToolCall, text_reply, tool_use_reply
from tests.conftest import Served

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    yield


@pytest.fixture(scope="module")
def instant() -> Iterator[Served]:
    """A sandbox whose AI jobs take no time, so the scripted model's polls end long before its turns do."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


def ask_omni_until_complete(prompt: str) -> Any:
    """A model that submits `askOmni`, polls `checkStatus` until the job is no longer running, then answers."""

    def respond(request: CapturedRequest) -> Reply:
        results = request.tool_result_texts
        if not results:
            return tool_use_reply(ToolCall("askOmni", {"prompt": prompt}))
        if "submitted" in results[0] or "Poll again" in results[0]:
            match = _UUID.search(results[0])
            assert match is not None, results[0]
            return tool_use_reply(ToolCall("checkStatus", {"jobId": match.group(0)}))
        return text_reply("Omni's agent answered: West leads.")

    return respond


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def final_of(events: list[Event]) -> AssistantMessage:
    final = events[-1]
    assert isinstance(final, FinalMessage), final
    return final.message


def pages_of(events: list[Event]) -> tuple[list[ChartPageReady], list[ChartPagePart]]:
    ready = [e for e in events if isinstance(e, ChartPageReady)]
    return ready, [p for p in final_of(events).parts if isinstance(p, ChartPagePart)]


def alices_jobs(sandbox: Sandbox) -> list[str]:
    return [job.id for job in sandbox.jobs.jobs.values() if job.user_id == embed_user_id("alice")]


def chart_page_calls(sandbox: Sandbox) -> list[tuple[str, dict[str, Any]]]:
    return [(user, args) for user, tool, args in sandbox.stats.tool_arguments if tool == "getJobChartPage"]


async def test_claude_the_bridge_fetches_the_page_of_a_completed_ask_omni_job_and_the_model_never_sees_it(
    instant: Served,
) -> None:
    served = instant
    fake = FakeAnthropic(responder=ask_omni_until_complete("revenue by region"))
    async with fake.serve() as url:
        settings = load_settings(
            None,
            omni_base_url=served.url,
            omni_api_key=served.org_key,
            anthropic_api_key="test-key",
            anthropic_base_url=url,
            bridge_engine="claude",
            bridge_max_turns=50,  # the model polls checkStatus as often as it likes; the job takes no time
        )
        async with Bridge(settings) as bridge:
            before = set(alices_jobs(served.sandbox))
            events = await collect(bridge.ask(user="alice", question="Ask Omni's agent for revenue by region"))
            conversation = await bridge.store.get(events[-1].conversation_id)

    ready, parts = pages_of(events)
    (job_id,) = set(alices_jobs(served.sandbox)) - before
    assert [p.job_id for p in parts] == [job_id] and ready[0].page == parts[0]
    assert parts[0].title == "revenue by region"
    assert "<svg" in parts[0].html and "West" in parts[0].html and "East" not in parts[0].html
    # Called from code once, as alice, with Omni's documented arguments ...
    assert chart_page_calls(served.sandbox) == [(embed_user_id("alice"), {"jobId": job_id, "format": "html"})]
    # ... and never offered to the model, nor put in what it reads.
    assert len(fake.requests) >= 3
    assert all("getJobChartPage" not in request.tool_names for request in fake.requests)
    assert all("<svg" not in json.dumps(request.body) for request in fake.requests)
    assert conversation is not None and "<svg" not in json.dumps(conversation.messages)


async def test_omni_the_page_of_the_rest_ai_job_comes_through_the_users_mcp_session(served: Served) -> None:
    settings = load_settings(None, omni_base_url=served.url, omni_api_key=served.org_key, bridge_engine="omni")
    async with Bridge(settings) as bridge:
        before = set(alices_jobs(served.sandbox))
        events = await collect(bridge.ask(user="alice", question="revenue by region", engine="omni"))
        bobs = await collect(bridge.ask(user="bob", question="revenue by region", engine="omni"))

    ready, parts = pages_of(events)
    (job_id,) = set(alices_jobs(served.sandbox)) - before  # the REST job: one job engine serves REST and MCP
    assert [p.job_id for p in parts] == [job_id] and [e.page for e in ready] == parts
    assert parts[0].title == "revenue by region" and "West" in parts[0].html and "East" not in parts[0].html
    _, bob_parts = pages_of(bobs)
    assert "East" in bob_parts[0].html and "West" not in bob_parts[0].html
    assert [user for user, _ in chart_page_calls(served.sandbox)] == [embed_user_id("alice"), embed_user_id("bob")]
    assert [p.type for p in pages_of(events)[1]] == ["chart_page"]


async def test_no_page_is_asked_for_when_omni_does_not_list_the_tool_for_the_user() -> None:
    sandbox = Sandbox(SandboxConfig(capabilities=frozenset({"single_shot", "docs_search"}), job_step_seconds=0.02))
    async with sandbox.serve() as url:
        settings = load_settings(None, omni_base_url=url, omni_api_key=sandbox.config.org_key, bridge_engine="omni")
        async with Bridge(settings) as bridge:
            events = await collect(bridge.ask(user="alice", question="revenue by region", engine="omni"))

    ready, parts = pages_of(events)
    assert not ready and not parts
    assert final_of(events).outcome == "completed" and final_of(events).text
    assert chart_page_calls(sandbox) == []
    assert sandbox.stats.counts["mcp.sessions"] >= 1  # the tool list was read, on the user's session


async def test_a_refused_page_leaves_the_answer_complete_without_one(served: Served) -> None:
    settings = load_settings(None, omni_base_url=served.url, omni_api_key=served.org_key, bridge_engine="omni")
    async with Bridge(settings) as bridge:
        events = await collect(bridge.ask(user="alice", question="revenue, orders and units by day", engine="omni"))

    ready, parts = pages_of(events)
    assert not ready and not parts  # Omni answered 413: the page is over 200,000 characters
    assert final_of(events).outcome == "completed"
    assert len(chart_page_calls(served.sandbox)) == 1
