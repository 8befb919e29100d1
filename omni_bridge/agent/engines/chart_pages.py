"""Omni's chart page of a finished AI job, fetched by the bridge's own code and kept as a content part.

Omni's `getJobChartPage` answers with a whole interactive HTML page (up to 200,000 characters) for a COMPLETE
`askOmni` job, and Omni advises calling it from code: "if your LLM calls it, the full page goes into the LLM's
context". So the toolset never offers it to a model (`CODE_ONLY_TOOLS`), and the engines call it here: the
claude engine when a `checkStatus` (or `askOmni`) result the model asked for says COMPLETE, the omni engine when
its AI job completes. An AI Jobs id and an `askOmni` job id are one kind of id in the sandbox (one job engine
serves both); at Omni that is not documented, and a refusal only means the answer has no page.

The call goes through the end user's pooled MCP session (the toolset's key: the same user rules as every other
call) and only when Omni lists the tool for that user. A page is a nicety: whatever goes wrong (not listed, a
`{status: 4xx, error}` answer, a page too long, a timeout, a broken connection) leaves the answer without one,
logged, never failed. Each job is tried once per run. The page never enters the model's transcript.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from omni_bridge.agent.engines.run import Run
from omni_bridge.agent.events import MAX_CHART_PAGE_CHARS, ChartPagePart, ChartPageReady, Event
from omni_bridge.exceptions import McpError
from omni_bridge.tools import ToolOutcome, Toolset

if TYPE_CHECKING:
    import mcp_types as types  # in annotations only: `mcp` is imported when a session opens

__all__ = ["CHART_PAGE_TOOL", "ChartPages", "fetch_chart_page"]

log = logging.getLogger("omni_bridge.agent")

CHART_PAGE_TOOL = "getJobChartPage"
FETCH_SECONDS = 30.0
"""The longest one page may take (the pool's tool timeout caps it too)."""
_JOB_TOOLS = frozenset({"askOmni", "checkStatus"})


class ChartPages:
    """The chart pages one run fetched: at most one per job, each job tried once."""

    def __init__(self) -> None:
        self.parts: list[ChartPagePart] = []
        self._tried: set[str] = set()

    async def after_tool_call(self, run: Run, outcome: ToolOutcome) -> AsyncIterator[Event]:
        """A `ChartPageReady` when the model's `askOmni`/`checkStatus` call showed a job COMPLETE."""
        structured = outcome.structured or {}
        if outcome.tool not in _JOB_TOOLS or outcome.is_error or structured.get("state") != "COMPLETE":
            return
        job_id = structured.get("jobId") or structured.get("id")
        prompt = structured.get("prompt")
        if isinstance(job_id, str) and job_id:
            async for event in self.for_job(run, job_id, title=prompt if isinstance(prompt, str) else None):
                yield event

    async def for_job(self, run: Run, job_id: str, *, title: str | None = None) -> AsyncIterator[Event]:
        """A `ChartPageReady` once the page of the COMPLETE job `job_id` was fetched (nothing if there is none)."""
        if job_id in self._tried:
            return
        self._tried.add(job_id)
        page = await fetch_chart_page(run.toolset, job_id, title=title)
        if page is not None:
            self.parts.append(page)
            yield ChartPageReady(**run.stamp(), page=page)


async def fetch_chart_page(toolset: Toolset | None, job_id: str, *, title: str | None = None) -> ChartPagePart | None:
    """The chart page of the COMPLETE job `job_id`, through `toolset`'s pooled session; `None` when there is none."""
    if toolset is None:
        return None
    pool, key = toolset.pool, toolset.key
    try:
        if CHART_PAGE_TOOL not in {tool.name for tool in await pool.list_tools(key)}:
            log.debug("no chart page for job %s: %s is not listed for %r", job_id, CHART_PAGE_TOOL, key)
            return None
        result = await pool.call_tool(key, CHART_PAGE_TOOL, {"jobId": job_id, "format": "html"}, deadline=FETCH_SECONDS)
    except McpError as exc:
        log.info("no chart page for job %s: %s", job_id, exc)
        return None
    answer = _answer_of(result)
    status, body = answer.get("status"), answer.get("body")
    if not isinstance(body, str) or not body.strip() or (isinstance(status, int) and not 200 <= status < 300):
        log.info("no chart page for job %s: Omni answered %s %s", job_id, status, str(answer.get("error", ""))[:200])
        return None
    if len(body) > MAX_CHART_PAGE_CHARS:
        log.info("no chart page for job %s: %d characters is over %d", job_id, len(body), MAX_CHART_PAGE_CHARS)
        return None
    return ChartPagePart(job_id=job_id, html=body, title=title)


def _answer_of(result: types.CallToolResult) -> dict[str, Any]:
    """`structuredContent` (Omni's documented place), else the JSON of the first text block, else nothing."""
    if isinstance(result.structured_content, dict):
        return result.structured_content
    for block in result.content:
        if isinstance(block, types.TextContent):
            try:
                parsed = json.loads(block.text)
            except ValueError:
                return {}
            return parsed if isinstance(parsed, dict) else {}
    return {}
