"""The OpenAI Agents SDK adapter: its example end to end on the sandbox, with the SDK's own `ScriptedModel`."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "agents.testing", reason="the openai-agents extra is not installed: pip install 'omni-bridge[openai-agents]'"
)

# Imported after the skip: without the extra, these imports would fail.
from agents import FunctionTool

from omni_bridge.agent import OmniConnection
from omni_bridge.integrations.openai_agents import omni_tools
from omni_bridge.sandbox import Sandbox, embed_user_id
from omni_bridge.tools import CODE_ONLY_TOOLS
from tests.integrations.helpers import REGIONS, load_example, regions_in_text, run_example

OFFERED_FROM_CODE = CODE_ONLY_TOOLS | {"pickTopic"}
"""Never offered to a model: code-only tools, and `pickTopic`, which the bridge runs itself (auto-pinning)."""

example = load_example("openai_agents_omni")


async def test_the_tools_are_omnis_for_that_user_plus_read_result(omni: OmniConnection, sandbox: Sandbox) -> None:
    tools = await omni_tools(await omni.toolset("alice"))

    assert [tool.name for tool in tools] == [
        *(t.name for t in sandbox.tools._tools if t.name not in OFFERED_FROM_CODE),
        "read_result",
    ]
    get_data = next(tool for tool in tools if tool.name == "getData")
    assert isinstance(get_data, FunctionTool)
    assert get_data.params_json_schema["properties"]["prompt"]["type"] == "string"
    assert get_data.strict_json_schema is False


async def test_each_run_answers_with_its_own_users_rows(omni: OmniConnection) -> None:
    alice = await example.ask(omni, "alice", "revenue by region")
    bob = await example.ask(omni, "bob", "revenue by region")

    assert regions_in_text(alice) == {REGIONS["alice"]}
    assert regions_in_text(bob) == {REGIONS["bob"]}


async def test_twenty_calls_by_one_user_open_one_mcp_session(omni: OmniConnection, sandbox: Sandbox) -> None:
    answers = [await example.ask(omni, "alice", "revenue by region") for _ in range(20)]

    assert all(regions_in_text(answer) == {REGIONS["alice"]} for answer in answers)
    model_calls = {call: n for call, n in sandbox.stats.tool_calls.items() if call[1] not in ("pickModel", "pickTopic")}
    assert model_calls == {(embed_user_id("alice"), "getData"): 20}  # (the selectors ran from the bridge's code)
    assert sandbox.stats.sessions_opened == {embed_user_id("alice"): 1}


def test_the_example_runs_as_a_script_on_its_own_sandbox(tmp_path: Path) -> None:
    done = run_example("openai_agents_omni", "--sandbox", "--user", "bob", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert regions_in_text(done.stdout) == {REGIONS["bob"]}
    assert done.stdout.rstrip().endswith("MCP sessions opened at the sandbox: 1")
