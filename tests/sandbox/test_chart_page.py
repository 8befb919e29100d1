"""`getJobChartPage` over loopback MCP: the page of a caller's COMPLETE job, Omni's `{status, body|error}` shape."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import re
from html.parser import HTMLParser
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.sandbox._chart_page import MAX_PAGE_CHARS, build_chart_page
from omni_bridge.tools import mcp_headers
from tests.conftest import Served
from tests.sandbox.mcp_helpers import mcp_client

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'


class _Elements(HTMLParser):
    """Every element of a page with its attributes, and the text of each script and of the whole page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser


async def completed_job(client: Client, prompt: str) -> str:
    submitted = await client.call_tool("askOmni", {"prompt": prompt})
    assert not submitted.is_error, submitted.content
    job_id: str = submitted.structured_content["jobId"]
    for _ in range(1000):  # 20 s at most
        if (await client.call_tool("checkStatus", {"jobId": job_id})).structured_content["state"] == "COMPLETE":
            return job_id
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not complete")


async def chart_page(client: Client, job_id: str, **extra: Any) -> CallToolResult:
    return await client.call_tool("getJobChartPage", {"jobId": job_id, "format": "html", **extra})


async def test_a_complete_job_of_the_caller_gets_its_page_with_charts_picker_and_table(
    served: Served, alice_id: str
) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        job_id = await completed_job(client, "revenue by region")
        result = await chart_page(client, job_id)

    assert not result.is_error and result.structured_content is not None
    assert set(result.structured_content) == {"status", "body"} and result.structured_content["status"] == 200
    page = result.structured_content["body"]
    assert page.startswith("<!doctype html>") and len(page) <= MAX_PAGE_CHARS
    found = parse(page)
    bars = [a for tag, a in found.tags if tag == "rect" and a.get("class") == "bar"]
    tips = [str(a["data-tip"]) for a in bars]
    assert len(tips) == 1 and tips[0].startswith("West · Total Revenue: ")  # Alice sees one region: West
    assert any(tag == "circle" for tag, _ in found.tags)  # the line chart
    assert [a["data-view"] for tag, a in found.tags if tag == "button"] == ["bar", "line", "table"]
    assert "West" in "".join(found.text) and "East" not in "".join(found.text)
    # No outside assets: nothing to fetch, and the one script is the one the page's own policy pins.
    assert not [a for _, a in found.tags if {"src", "href"} & set(a)]
    policy = next(a["content"] for tag, a in found.tags if tag == "meta" and a.get("http-equiv"))
    assert policy is not None and "default-src 'none'" in policy
    (script,) = found.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy


async def test_another_users_job_an_unknown_job_and_a_wrong_format_get_their_status_in_structured_content(
    served: Served, alice_id: str
) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        job_id = await completed_job(client, "revenue by region")
        wrong_format = await chart_page(client, job_id, format="png")
        unknown = await chart_page(client, "00000000-0000-4000-8000-000000000000")
        malformed = await chart_page(client, "not-a-uuid")
        missing = await client.call_tool("getJobChartPage", {"format": "html"})
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=embed_user_id("bob"))) as client:
        bobs = await chart_page(client, job_id)

    for result, status, fragment in [
        (wrong_format, 400, "format"),
        (unknown, 404, "not found"),
        (malformed, 400, "UUID"),
        (missing, 400, "jobId"),
        (bobs, 404, "not found"),  # another user's job is not found, as with checkStatus
    ]:
        assert result.is_error
        assert result.structured_content is not None and result.structured_content["status"] == status
        assert fragment in result.structured_content["error"] and "body" not in result.structured_content


async def test_a_job_that_is_not_complete_has_no_page_yet() -> None:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=600))  # the job stays QUEUED for the whole test
    async with sandbox.serve():
        headers = mcp_headers(sandbox.config.org_key, user_id=embed_user_id("alice"))
        async with mcp_client(sandbox.mcp_url(), headers) as client:
            submitted = await client.call_tool("askOmni", {"prompt": "revenue by region"})
            result = await chart_page(client, submitted.structured_content["jobId"])
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == 409 and "QUEUED" in result.structured_content["error"]


async def test_a_page_over_200000_characters_is_refused(served: Served, alice_id: str) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        job_id = await completed_job(client, "revenue, orders and units by day")
        result = await chart_page(client, job_id)
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == 413
    refusal = result.structured_content["error"]
    assert re.search(r"is [\d,]+ characters; pages over 200,000 characters are refused", refusal)


async def test_markup_in_the_question_is_shown_as_text_and_never_runs(served: Served, alice_id: str) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        job_id = await completed_job(client, f"revenue by region {HOSTILE}")
        page = (await chart_page(client, job_id)).structured_content["body"]
    found = parse(page)
    assert len(found.scripts) == 1 and "pwned" not in found.scripts[0]
    assert not [tag for tag, _ in found.tags if tag == "img"]
    assert HOSTILE in "".join(found.text)  # shown as the text it is


def test_markup_in_data_values_and_column_names_is_escaped_everywhere() -> None:
    out = io.StringIO()
    csv.writer(out).writerows([[f"Name {HOSTILE}", "Revenue"], [HOSTILE, "12.5"], ['a "quoted" & <b>bold</b>', "3"]])
    query = {"csvResult": out.getvalue(), "totalRowCount": 2}
    result = {"topic": "t", "actions": [{"type": "generate_query", "result": query}]}
    page = build_chart_page(job_id='x" onload="alert(1)', prompt="q", result=result)
    found = parse(page)
    assert len(found.scripts) == 1 and not [tag for tag, _ in found.tags if tag in ("img", "b")]
    assert found.tags[[tag for tag, _ in found.tags].index("body")][1]["data-job-id"] == 'x" onload="alert(1)'
    tips = [str(a["data-tip"]) for tag, a in found.tags if tag == "rect"]
    assert tips[0] == f"{HOSTILE} · Revenue: 12.50" and tips[1].startswith('a "quoted" & <b>bold</b>')
    assert f"Name {HOSTILE}" in found.text


def test_label_rows_of_a_truncated_preview_are_marked_and_left_out_of_the_chart() -> None:
    preview = "Day,Revenue\nFIRST\n2026-01-01,5\nSAMPLED 1 ROWS FROM MIDDLE\n2026-02-01,6\nLAST\n2026-03-01,7\n"
    query = {"csvResult": preview, "csvResultWasTruncated": True, "totalRowCount": 90}
    result = {"actions": [{"type": "generate_query", "result": query}]}
    found = parse(build_chart_page(job_id="j", prompt="q", result=result))
    assert len([a for tag, a in found.tags if tag == "rect"]) == 3
    assert "Partial result: this preview has 3 rows of 90." in found.text
    assert len([a for tag, a in found.tags if tag == "tr" and a.get("class") == "label-row"]) == 3


def test_a_result_without_rows_or_numbers_opens_on_its_table_and_says_why_there_is_no_chart() -> None:
    for csv_text, reason in [("Region,Revenue\n", "The query returned no rows."), ("A,B\nx,y\n", "No numeric column")]:
        result = {"actions": [{"type": "generate_query", "result": {"csvResult": csv_text}}]}
        found = parse(build_chart_page(job_id="j", prompt="q", result=result))
        body = next(attributes for tag, attributes in found.tags if tag == "body")
        assert body["data-initial"] == "table" and not [tag for tag, _ in found.tags if tag == "svg"]
        assert any(reason in text for text in found.text)
