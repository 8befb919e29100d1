"""Users of different Omni roles through one `Bridge` at once: each gets their own tool list, prompt and answer.

Omni gives a Viewer no `getData`. The bridge's tool lists are cached per identity, its system prompt names only
the tools the user has, and a Viewer's question is answered through `askOmni`/`checkStatus`. Both auth
strategies are run: the org key plus `X-MCP-User-ID`, and per-user embed MCP tokens.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from omni_bridge.agent import Bridge, EndUser
from omni_bridge.config import load_settings
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ToolCall, text_reply, tool_use_reply
from tests.conftest import Served

QUINN = EndUser(
    external_id="quinn", name="Quinn Querier", user_attributes={"region": "East"}, connection_roles={"c": "QUERIER"}
)
"""A Querier of the East region, upserted with that role."""
VERA = "vera"
"""The sandbox's demo Viewer, of the West region."""
QUESTION = "What is our revenue by region?"
_JOB = re.compile(r"Job (\S+) (?:submitted|is )")


@pytest.fixture(scope="module")
def quick() -> Iterator[Served]:
    """A sandbox of this module's own whose AI Jobs finish at once."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.0))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


def respond(request: CapturedRequest) -> Reply:
    """A model that queries with getData when it has it, else asks Omni's agent and polls the job."""
    results = request.tool_result_texts
    if not results:
        if "getData" in request.tool_names:
            return tool_use_reply([ToolCall("getData", {"prompt": QUESTION})])
        return tool_use_reply([ToolCall("askOmni", {"prompt": QUESTION})])
    job = _JOB.search(results[-1])
    if job is not None:
        return tool_use_reply([ToolCall("checkStatus", {"jobId": job.group(1)})])
    return text_reply("Answer: " + " ".join(results) + "\nFollow-ups: by month | by state")


def settings(served: Served, fake_url: str, auth: str) -> Any:
    strategy = {"omni_auth": auth, "omni_embed_secret": served.sandbox.config.embed_secret}
    return load_settings(
        None,
        omni_base_url=served.url,
        omni_api_key=served.org_key,
        anthropic_api_key="test-key",
        anthropic_base_url=fake_url,
        bridge_engine="claude",
        **(strategy if auth == "embed_token" else {}),
    )


def requests_of(fake: FakeAnthropic, marker: str) -> list[CapturedRequest]:
    return [r for r in fake.requests if marker in json.dumps(r.messages)]


def system_text(request: CapturedRequest) -> str:
    system = request.system
    return system if isinstance(system, str) else "".join(str(block.get("text")) for block in system or [])


@pytest.mark.parametrize("auth", ["org_key", "embed_token"])
async def test_a_querier_and_a_viewer_at_once_each_get_their_own_tools_and_answer(quick: Served, auth: str) -> None:
    fake = FakeAnthropic(responder=respond)
    async with fake.serve() as url, Bridge(settings(quick, url, auth)) as bridge:
        quinn, vera = await asyncio.gather(
            bridge.answer(user=QUINN, question=QUESTION + " (quinn)"),
            bridge.answer(user=VERA, question=QUESTION + " (vera)"),
        )
    assert quinn.outcome == vera.outcome == "completed"

    quinns, veras = requests_of(fake, "(quinn)"), requests_of(fake, "(vera)")
    assert "getData" in quinns[0].tool_names
    assert "getData" not in veras[0].tool_names and {"askOmni", "checkStatus"} <= set(veras[0].tool_names)
    # The prompt names only tools the user has: a Viewer's is told to ask Omni's agent and poll it.
    assert "getData" in system_text(quinns[0]) and "getData" not in system_text(veras[0])
    assert "askOmni" in system_text(veras[0]) and "checkStatus" in system_text(veras[0])
    called = [
        [
            c["name"]
            for m in r.messages[-1:]
            for c in m.get("content", [])
            if isinstance(c, dict) and c.get("type") == "tool_use"
        ]
        for r in veras
    ]
    assert called  # vera's answer went through Omni's agent, never getData:
    assert all("getData" not in json.dumps(r.messages) for r in veras)
    assert "checkStatus" in json.dumps(veras[-1].messages)

    assert "East" in quinn.text and "West" not in quinn.text
    assert "West" in vera.text and "East" not in vera.text
    stats = quick.sandbox.stats
    assert stats.tool_calls[(embed_user_id("vera"), "getData")] == 0
    assert stats.tool_calls[(embed_user_id("quinn"), "getData")] >= 1
    assert stats.tool_calls[(embed_user_id("vera"), "askOmni")] >= 1
