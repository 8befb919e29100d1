"""The console prints how an answer was computed: one line under it, from either engine, none without a query.

Run as the user runs it: `omni-bridge ask --sandbox` in a subprocess (the embedded sandbox; the claude engine
against the scripted fake Anthropic API), its stdout read back.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omni_bridge.testing import FakeAnthropic, ToolCall, tool_then_answer
from tests.cli.console_helpers import clean_env, run_cli

LAST_MONTH = (
    "How this was computed: topic order_items · fields order_items.total_revenue · "
    "filters orders.created_at 2026-10-01 to 2026-10-31 · your access: customers.region West · 1 row"
)


@pytest.mark.parametrize("engine", ["omni", "claude"])
async def test_the_line_under_the_answer_names_the_period_the_filters_and_the_rows(engine: str, tmp_path: Path) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "total sales last month"})))
    async with fake.serve() as url:
        extra = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": url} if engine == "claude" else {}
        env = clean_env(tmp_path, **extra)
        args = ("ask", "total sales last month", "--sandbox", "--user", "alice", "--engine", engine)
        done = await run_cli(*args, env=env, cwd=tmp_path)

    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    [how] = [line for line in lines if line.startswith("How this was computed:")]
    assert how.startswith(LAST_MONTH), how
    assert lines.index(how) > max(i for i, line in enumerate(lines) if "80,360.93" in line)  # under the answer
    # The query's link is the answer's own "Open in Omni" line under it, not also the end of this one. (The fake
    # model of the claude engine repeats the tool's text, link included, in its answer above.)
    footer = lines[lines.index(how) + 1 :]
    [link] = [line for line in footer if "http" in line]
    assert how == LAST_MONTH and re.fullmatch(r"Open in Omni: http://127\.0\.0\.1:\d+/chat/[\w-]+", link), footer


async def test_an_answer_without_a_query_has_no_such_line(tmp_path: Path) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(ToolCall("searchOmniDocs", {"question": "what is a topic?"})))
    async with fake.serve() as url:
        env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url)
        done = await run_cli("ask", "what is a topic?", "--sandbox", "--engine", "claude", env=env, cwd=tmp_path)

    assert done.code == 0, done.stderr
    assert "topic" in done.stdout.lower() and "How this was computed" not in done.stdout
