"""The sandbox's MCP endpoint, driven by the real `mcp` client over loopback HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from mcp import MCPError
from mcp.types import CallToolResult

from omni_bridge.sandbox import EMBED_MCP_PATH, MCP_PATH, Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import mcp_headers
from tests.conftest import Served
from tests.sandbox.mcp_helpers import csv_rows, mcp_client, refusal, text_of

MODES = ["legacy", "auto"]
PATHS = pytest.mark.parametrize("path", [MCP_PATH, EMBED_MCP_PATH])
"""Omni's `/mcp/https` and the embed guide's `/mcp`: the sandbox serves both through the same gate."""


def _column(structured: dict[str, Any], fragment: str) -> int:
    return next(i for i, f in enumerate(structured["fields"]) if fragment in f)


async def _get_data(
    served: Served,
    user_id: str | None,
    prompt: str,
    *,
    mode: str = "auto",
    model_id: str | None = None,
    topic_name: str | None = None,
    path: str = MCP_PATH,
) -> CallToolResult:
    headers = mcp_headers(served.org_key, user_id=user_id, model_id=model_id, topic_name=topic_name)
    async with mcp_client(served.url + path, headers, mode=mode) as client:
        return await client.call_tool("getData", {"prompt": prompt})


@PATHS
@pytest.mark.parametrize("mode", MODES)
async def test_both_protocol_eras_list_omnis_tools(served: Served, alice_id: str, mode: str, path: str) -> None:
    async with mcp_client(served.url + path, mcp_headers(served.org_key, user_id=alice_id), mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert names == {"pickModel", "pickTopic", "getData", "askOmni", "checkStatus", "searchOmniDocs", "getJobChartPage"}


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        (
            frozenset({"agentic", "docs_search"}),
            {"askOmni", "checkStatus", "getJobChartPage", "pickModel", "pickTopic", "searchOmniDocs"},
        ),
        (frozenset({"single_shot"}), {"getData", "pickModel", "pickTopic"}),
        (frozenset({"docs_search"}), {"searchOmniDocs"}),
        (frozenset(), set()),
    ],
)
async def test_tool_listing_follows_capability_settings(capabilities: frozenset[str], expected: set[str]) -> None:
    sandbox = Sandbox(SandboxConfig(capabilities=capabilities))
    async with sandbox.serve() as url:
        headers = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))
        async with mcp_client(sandbox.mcp_url(), headers) as client:
            assert {t.name for t in (await client.list_tools()).tools} == expected
            if "getData" not in expected:
                result = await client.call_tool("getData", {"prompt": "revenue by region"})
                assert result.is_error and "Unknown tool" in text_of(result)
    assert url.startswith("http://127.0.0.1:")


@PATHS
@pytest.mark.parametrize("mode", MODES)
async def test_each_user_sees_only_their_region(
    served: Served, alice_id: str, bob_id: str, mode: str, path: str
) -> None:
    alice = await _get_data(served, alice_id, "revenue by region", mode=mode, path=path)
    bob = await _get_data(served, bob_id, "revenue by region", mode=mode, path=path)
    assert not alice.is_error and not bob.is_error
    a, b = alice.structured_content, bob.structured_content
    region = _column(a, "region")
    assert {row[region] for row in csv_rows(a)} == {"West"}
    assert {row[region] for row in csv_rows(b)} == {"East"}
    assert csv_rows(a) != csv_rows(b)


async def test_totals_differ_between_regions_and_add_up_for_a_two_region_user(served: Served) -> None:
    totals = {}
    for external_id in ("alice", "bob", "erin"):
        result = await _get_data(served, embed_user_id(external_id), "total revenue")
        assert not result.is_error, result.content
        rows = csv_rows(result.structured_content)
        assert len(rows) == 1
        totals[external_id] = float(rows[0][-1])
    assert totals["alice"] != totals["bob"]
    assert totals["erin"] == pytest.approx(totals["alice"] + totals["bob"], abs=0.05)


async def test_no_row_outside_the_users_region_in_any_breakdown(served: Served, alice_id: str) -> None:
    west_states = None
    for prompt in ("revenue by state", "orders by region and month in 2025", "customers by state"):
        result = await _get_data(served, alice_id, prompt)
        assert not result.is_error, result.content
        data = result.structured_content
        assert "customers.region" in data["sql"] or "region" in data["sql"]
        if "region" in " ".join(data["fields"]):
            region = _column(data, "region")
            assert {row[region] for row in csv_rows(data)} == {"West"}
        else:
            states = {row[_column(data, "state")] for row in csv_rows(data)}
            west_states = states if west_states is None else west_states
            assert states == west_states
    bob = await _get_data(served, embed_user_id("bob"), "revenue by state")
    bob_states = {row[_column(bob.structured_content, "state")] for row in csv_rows(bob.structured_content)}
    assert west_states and bob_states and not (west_states & bob_states)


async def test_grant_restricted_topic_is_refused_without_the_group(served: Served) -> None:
    prompt = "gross margin by category"
    alice = await _get_data(served, embed_user_id("alice"), prompt, topic_name="product_margins")
    carol = await _get_data(served, embed_user_id("carol"), prompt, topic_name="product_margins")
    assert alice.is_error
    assert text_of(alice).startswith("403 Forbidden") and "finance_only" in text_of(alice)
    assert not carol.is_error and csv_rows(carol.structured_content)


async def test_user_without_the_filter_attribute_gets_an_error_not_all_rows(served: Served) -> None:
    nora = await _get_data(served, embed_user_id("nora"), "revenue by region")
    assert nora.is_error and "region" in text_of(nora)
    catalog = await _get_data(
        served, embed_user_id("nora"), "product count by category", model_id="7a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
    )
    assert not catalog.is_error or "Model" in text_of(catalog)


@PATHS
async def test_user_required_without_a_user_is_refused(served: Served, path: str) -> None:
    headers = mcp_headers(served.org_key, user_id=None) | {"X-MCP-User-Required": "true"}
    for mode in MODES:
        error = await refusal(served.url + path, headers, mode=mode)
        assert "X-MCP-User-Required" in error.message and error.data["status"] == 403


async def test_unknown_user_is_refused(served: Served) -> None:
    headers = mcp_headers(served.org_key, user_id="00000000-0000-4000-8000-000000000000")
    error = await refusal(served.mcp_url, headers)
    assert "not found" in error.message and error.data["status"] == 404


@pytest.mark.parametrize(
    ("authorization", "message"),
    [(None, "Unauthorized"), ("Bearer wrong-key", "Unauthorized"), ("Basic abc", "Unauthorized")],
)
@PATHS
async def test_bad_credentials_are_refused(served: Served, authorization: str | None, message: str, path: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    error = await refusal(served.url + path, headers)
    assert message in error.message and error.data["status"] == 401


@PATHS
async def test_personal_token_cannot_act_for_another_user(served: Served, alice_id: str, path: str) -> None:
    error = await refusal(served.url + path, mcp_headers(served.personal_token, user_id=alice_id))
    assert "cannot act on behalf" in error.message and error.data["status"] == 403
    async with mcp_client(served.url + path, mcp_headers(served.personal_token, user_id=None)) as client:
        result = await client.call_tool("getData", {"prompt": "revenue by region"})
    data = result.structured_content
    assert {row[_column(data, "region")] for row in csv_rows(data)} == {"West"}  # Dana's own region


async def test_http_refusals_are_plain_status_codes(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url) as http:
        probe = await http.get("/.well-known/oauth-protected-resource")
        assert probe.status_code == 404 and "www-authenticate" not in probe.headers
        probe = await http.get("/.well-known/oauth-authorization-server/mcp/https")
        assert probe.status_code == 404
        denied = await http.post("/mcp/https", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
        assert denied.json()["error"]["data"] == {"status": 401, "detail": "Unauthorized: Missing or invalid API key"}


async def test_dropped_sessions_answer_session_not_found(served: Served, alice_id: str) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id), mode="legacy") as client:
        await client.list_tools()
        assert served.sandbox.drop_sessions() >= 1
        with pytest.raises(MCPError, match="Session not found"):
            await client.call_tool("getData", {"prompt": "total revenue"})


@pytest.mark.parametrize("used_on", [MCP_PATH, EMBED_MCP_PATH])
async def test_legacy_session_is_bound_to_the_user_that_opened_it(
    served: Served, alice_id: str, bob_id: str, used_on: str
) -> None:
    # Open a legacy session as Alice, then send Bob's header on it, as a pool sharing sessions would (on either
    # path: both are one endpoint, so a session opened on one is the same session on the other).
    async with httpx2.AsyncClient(base_url=served.url) as http:
        init = await http.post(
            MCP_PATH,
            headers=mcp_headers(served.org_key, user_id=alice_id) | {"Accept": "application/json, text/event-stream"},
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
        )
        sid = init.headers["mcp-session-id"]
        other = await http.post(
            used_on,
            headers=mcp_headers(served.org_key, user_id=bob_id)
            | {
                "Accept": "application/json, text/event-stream",
                "Mcp-Session-Id": sid,
                "MCP-Protocol-Version": "2025-11-25",
            },
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        )
    assert other.status_code == 403 and "another user" in other.json()["error"]["message"]


async def test_ask_omni_then_check_status_until_complete(served: Served, alice_id: str) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        submitted = await client.call_tool("askOmni", {"prompt": "revenue by region"})
        assert not submitted.is_error, submitted.content
        job_id = submitted.structured_content["jobId"]
        states = []
        async with asyncio.timeout(10):
            while True:
                status = await client.call_tool("checkStatus", {"jobId": job_id})
                states.append(status.structured_content["state"])
                if states[-1] in ("COMPLETE", "FAILED", "CANCELLED"):
                    break
                await asyncio.sleep(0.02)
    assert states[-1] == "COMPLETE"
    csv = status.structured_content["result"]["actions"][0]["result"]["csvResult"]
    assert "West" in csv and "East" not in csv
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=embed_user_id("bob"))) as client:
        other = await client.call_tool("checkStatus", {"jobId": job_id})
    assert other.is_error and text_of(other).startswith("404")


async def test_search_docs_answers_with_sources(served: Served, alice_id: str) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        result = await client.call_tool("searchOmniDocs", {"question": "How does row-level security work?"})
    assert not result.is_error
    assert result.structured_content["sources"][0]["url"].endswith("/docs/row-level-security")
    assert "region" in result.structured_content["answer"]


@pytest.mark.parametrize(
    ("tool", "arguments", "fragment"),
    [
        ("getData", {}, "prompt: Field required"),
        ("getData", {"prompt": ""}, "prompt"),
        ("getData", {"prompt": "revenue", "limit": 0}, "limit"),
        ("getData", {"prompt": "revenue", "bogus": 1}, "bogus"),
        ("getData", {"prompt": "revenue", "modelId": "not-a-model"}, "404"),
        ("getData", {"prompt": "revenue", "topicName": "nope"}, "404"),
        ("getData", {"prompt": "what is the meaning of life"}, "400"),
        ("checkStatus", {"jobId": "not-a-uuid"}, "400"),
        ("checkStatus", {"jobId": "00000000-0000-4000-8000-000000000000"}, "404"),
        ("pickTopic", {"prompt": 5}, "prompt"),
    ],
)
async def test_bad_tool_arguments_get_clear_errors(
    served: Served, alice_id: str, tool: str, arguments: dict[str, Any], fragment: str
) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert fragment in text_of(result)


async def test_feature_disabled_lists_tools_but_refuses_calls() -> None:
    sandbox = Sandbox(SandboxConfig(omni_agent_enabled=False))
    async with sandbox.serve():
        async with mcp_client(sandbox.mcp_url(), mcp_headers(sandbox.config.org_key, user_id=None)) as client:
            assert "getData" in {t.name for t in (await client.list_tools()).tools}
            refused = await client.call_tool("getData", {"prompt": "revenue"})
            models = await client.call_tool("pickModel", {})
    assert refused.is_error and "Feature is not enabled" in text_of(refused)
    assert not models.is_error and len(models.structured_content["models"]) >= 2


_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


async def _initialize_status(url: str, org_key: str, *, host: str | None = None, origin: str | None = None) -> int:
    """The HTTP status of an authenticated `initialize` sent with the given `Host` and `Origin`."""
    headers = {"Authorization": f"Bearer {org_key}", "Accept": "application/json, text/event-stream"}
    headers.update({"X-MCP-User-ID": embed_user_id("alice"), "X-MCP-User-Required": "true"})
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    async with httpx2.AsyncClient(timeout=10) as http:
        return (await http.post(url, json=_INITIALIZE, headers=headers)).status_code


async def test_on_loopback_a_foreign_host_or_origin_is_refused(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]

    assert await _initialize_status(served.mcp_url, served.org_key, host="evil.example.com") == 421
    assert await _initialize_status(served.mcp_url, served.org_key, origin="http://evil.example.com") == 403
    assert await _initialize_status(served.mcp_url, served.org_key, host=f"localhost:{port}") == 200
    assert await _initialize_status(served.mcp_url, served.org_key, origin=f"http://127.0.0.1:{port}") == 200


async def test_configured_hosts_are_accepted_besides_loopback_and_no_others() -> None:
    sandbox = Sandbox(host="0.0.0.0", allowed_hosts=["omni.example.test"])
    key = sandbox.config.org_key
    async with sandbox.serve() as url:
        mcp_url = sandbox.mcp_url()
        assert await _initialize_status(mcp_url, key, host="omni.example.test:8443") == 200
        assert await _initialize_status(mcp_url, key, origin="https://omni.example.test") == 200
        assert await _initialize_status(mcp_url, key, host=url.removeprefix("http://")) == 200
        assert await _initialize_status(mcp_url, key, host="evil.example.com") == 421
