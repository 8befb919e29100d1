"""The MCP proxy over stdio, driven by the real `mcp` client as a desktop client would launch it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from omni_bridge.sandbox import Sandbox, embed_user_id
from omni_bridge.tools import CODE_ONLY_TOOLS
from tests.integrations.helpers import REGIONS, hermetic_env, regions_in_text, regions_of, run_example, stdio_proxy
from tests.sandbox.mcp_helpers import text_of, wait_until


async def test_a_desktop_client_lists_and_calls_omni_tools_as_the_user_named_on_the_command_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with Client(stdio_proxy(sandbox, "--user", "alice", cwd=str(tmp_path))) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        results = [await client.call_tool("getData", {"prompt": "revenue by region"}) for _ in range(3)]

    assert tools == [t.name for t in sandbox.tools._tools if t.name not in CODE_ONLY_TOOLS]  # Omni's order
    assert all(regions_of(result) == {REGIONS["alice"]} for result in results)
    # Three calls and a listing, one MCP session to Omni: the proxy forwards through the session pool.
    assert sandbox.stats.sessions_opened == {embed_user_id("alice"): 1}


async def test_omni_stdio_bridge_variables_work_as_a_drop_in(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.url is not None
    drop_in = {
        "MCP_SERVER_URL": sandbox.mcp_url(),
        "MCP_API_KEY": sandbox.config.org_key,
        "MCP_USER_ID": embed_user_id("bob"),  # an Omni user id, used as is
        "MCP_USER_REQUIRED": "true",
    }
    params = stdio_proxy(sandbox, cwd=str(tmp_path), **drop_in)
    assert params.env is not None
    del params.env["OMNI_BASE_URL"], params.env["OMNI_API_KEY"]  # only @omni-co/mcp's variables are set
    async with Client(params) as client:
        result = await client.call_tool("getData", {"prompt": "revenue by region"})

    assert regions_of(result) == {REGIONS["bob"]}


async def test_omni_errors_and_refusals_reach_the_client_unchanged(sandbox: Sandbox, tmp_path: Path) -> None:
    async with Client(stdio_proxy(sandbox, "--user", "alice", cwd=str(tmp_path))) as client:
        invalid = await client.call_tool("getData", {"prompt": "revenue by region", "limit": 0})
        unknown = await client.call_tool("noSuchTool", {})

    assert invalid.is_error and text_of(invalid).startswith("400 Bad Request: Invalid arguments for getData")
    assert invalid.structured_content == {"error": {"status": 400, "detail": text_of(invalid).split(": ", 1)[1]}}
    assert unknown.is_error and text_of(unknown) == "404 Not Found: Unknown tool: noSuchTool"


async def test_cancelling_a_call_over_stdio_cancels_it_at_omni(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.set_faults(slow_tool_seconds=60.0, slow_tool_name="getData")
    async with Client(stdio_proxy(sandbox, "--user", "carol", cwd=str(tmp_path))) as client:
        call = asyncio.create_task(client.call_tool("getData", {"prompt": "revenue by region"}))
        await wait_until(lambda: sandbox.stats.in_flight == 1, seconds=30)
        call.cancel()
        await wait_until(lambda: sandbox.stats.cancelled_tool_calls == [(embed_user_id("carol"), "getData")])
        sandbox.set_faults(slow_tool_seconds=0.0)
        after = await client.call_tool("getData", {"prompt": "revenue by region"})  # the session lives on

    assert call.cancelled()
    assert regions_of(after) == {REGIONS["carol"]}


def test_a_stdio_proxy_naming_no_user_refuses_to_start_and_says_how_to_name_one(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert sandbox.url is not None
    env = hermetic_env(OMNI_BASE_URL=sandbox.url, OMNI_API_KEY=sandbox.config.org_key)
    done = subprocess.run(
        [sys.executable, "-m", "omni_bridge.cli", "mcp-proxy"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "no end user" in done.stderr and "--user" in done.stderr and "MCP_USER_ID" in done.stderr
    assert sandbox.config.org_key not in done.stderr + done.stdout
    assert sandbox.stats.sessions_opened == {}


def test_a_stdio_proxy_for_an_unknown_user_refuses_to_start(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.url is not None
    env = hermetic_env(OMNI_BASE_URL=sandbox.url, OMNI_API_KEY=sandbox.config.org_key)
    done = subprocess.run(
        [sys.executable, "-m", "omni_bridge.cli", "mcp-proxy", "--user", "mallory"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "no embed user with external id 'mallory'" in done.stderr
    assert sandbox.config.org_key not in done.stderr + done.stdout


def test_the_config_example_prints_an_entry_that_launches_the_proxy_for_one_user(tmp_path: Path) -> None:
    done = run_example("mcp_proxy_config", "--user", "bob", "--sandbox", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["mcpServers"]["omni"]
    assert entry["args"] == ["mcp-proxy", "--user", "bob", "--sandbox"]
    assert Path(entry["command"]) == Path(sys.executable).parent / "omni-bridge"


def test_the_printed_entry_works_when_a_client_launches_it(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "omni-bridge"
    if not command.exists():
        pytest.skip(f"no `omni-bridge` script beside {sys.executable}: the package is not installed in this venv")
    wired = subprocess.run([command, "mcp-proxy", "--help"], capture_output=True, env=hermetic_env(), check=False)
    if wired.returncode != 0:
        pytest.skip("`omni-bridge mcp-proxy` is not wired into omni_bridge/cli yet (cli must register mcp_proxy)")

    done = run_example("mcp_proxy_config", "--user", "bob", "--check", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "tools: pickModel, pickTopic, getData" in done.stdout
    assert regions_in_text(done.stdout) == {REGIONS["bob"]}
