"""Result shaping against real sandbox results: budgeted previews, kept artifacts, paging, charts, errors."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mcp.types import CallToolResult, EmbeddedResource, ImageContent, TextContent, TextResourceContents

from omni_bridge.tools import (
    CHARS_PER_TOKEN,
    MAX_READ_LIMIT,
    READ_RESULT_TOOL,
    InvalidReadArguments,
    MemoryArtifactStore,
    ReadResult,
    ResultNotFound,
    estimate_tokens,
    mcp_headers,
    read_result,
    shape_result,
)
from tests.conftest import Served
from tests.sandbox.mcp_helpers import mcp_client

BIG_QUESTION = "revenue by product by state by month"
_TERMINAL = ("COMPLETE", "FAILED", "CANCELLED")
_FENCED_CSV = re.compile(r"```csv\n(.*?)```", re.DOTALL)


async def _call(served: Served, user_id: str | None, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=user_id)) as client:
        return await client.call_tool(tool, arguments)


@pytest.fixture(scope="module")
def big_result(served: Served) -> CallToolResult:
    """The 50,000-row answer, fetched once per module on a loop of its own (the tests' loops are per test)."""
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, _call(served, None, "getData", {"prompt": BIG_QUESTION, "limit": 50_000}))
        return result.result()


def _parse(csv_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(csv_text, newline="")))


def _fenced_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the one CSV block the model sees."""
    blocks = _FENCED_CSV.findall(text)
    assert len(blocks) == 1, text[:500]
    header, *rows = _parse(blocks[0])
    return header, rows


async def _page_through(store: MemoryArtifactStore, owner: str, result_id: str, offset: int) -> Iterator[ReadResult]:
    pages = []
    next_offset: int | None = offset
    while next_offset is not None:
        page = await read_result(store, owner=owner, result_id=result_id, offset=next_offset, limit=MAX_READ_LIMIT)
        assert page.offset == next_offset and page.count > 0
        pages.append(page)
        next_offset = page.next_offset
    return iter(pages)


# --- the large result ---------------------------------------------------------------------------------


@pytest.mark.parametrize("budget_tokens", [500, 4000, 20_000])
async def test_fifty_thousand_rows_reach_the_model_within_budget(
    big_result: CallToolResult, budget_tokens: int
) -> None:
    structured = big_result.structured_content
    assert structured is not None and structured["rowCount"] == 50_000
    full_header, *full_rows = _parse(structured["csv"])
    store = MemoryArtifactStore()

    shaped = await shape_result(big_result, tool="getData", owner="admin", budget_tokens=budget_tokens, artifacts=store)

    text = shaped.text
    assert len(text) <= budget_tokens * CHARS_PER_TOKEN
    assert estimate_tokens(text) <= budget_tokens
    assert [block["type"] for block in shaped.content] == ["text"]
    header, rows = _fenced_rows(text)
    assert header == full_header == ["Product", "State", "Order Month", "Total Revenue"]
    assert 0 < shaped.shown_rows == len(rows) < 50_000
    assert rows == full_rows[: len(rows)]
    assert shaped.row_count == 50_000 and shaped.total_row_count == 52_290
    assert shaped.artifact_id is not None and shaped.artifact_id.startswith("res_")
    note = f'Showing rows 1-{len(rows):,} of 50,000. The full result is kept as result_id "{shaped.artifact_id}"'
    assert note in text and f"offset={len(rows)}" in text
    assert "Omni found 52,290 rows" in text  # Omni's own truncation is said too
    assert shaped.summary == f"50,000 rows, 4 columns (first {len(rows):,} shown); Omni found 52,290"
    assert shaped.chart is None  # 50,000 points is no chart
    assert shaped.omni_chat_url == structured["omniChatUrl"]
    stored = await store.get(shaped.artifact_id, owner="admin")
    assert stored is not None and stored.row_count == 50_000 and stored.csv == structured["csv"]


async def test_paging_from_the_preview_returns_the_remaining_rows_exactly(big_result: CallToolResult) -> None:
    structured = big_result.structured_content
    assert structured is not None
    _, *full_rows = _parse(structured["csv"])
    store = MemoryArtifactStore()
    shaped = await shape_result(big_result, tool="getData", owner="admin", artifacts=store)
    assert shaped.artifact_id is not None
    _, seen = _fenced_rows(shaped.text)

    for page in await _page_through(store, "admin", shaped.artifact_id, shaped.shown_rows):
        assert len(page.text) <= 4000 * CHARS_PER_TOKEN
        header, rows = _fenced_rows(page.text)
        assert header == ["Product", "State", "Order Month", "Total Revenue"]
        assert len(rows) == page.count and page.total_rows == 50_000
        assert page.offset == len(seen)
        seen.extend(rows)

    assert len(seen) == len(full_rows) == 50_000
    assert seen == full_rows
    assert "this is the end of the result" in page.text


async def test_a_page_stops_at_the_budget_and_says_where_to_go_on(big_result: CallToolResult) -> None:
    structured = big_result.structured_content
    assert structured is not None
    _, *full_rows = _parse(structured["csv"])
    store = MemoryArtifactStore()
    shaped = await shape_result(big_result, tool="getData", owner="admin", artifacts=store)
    assert shaped.artifact_id is not None

    page = await read_result(
        store, owner="admin", result_id=shaped.artifact_id, offset=1000, limit=MAX_READ_LIMIT, budget_tokens=300
    )

    assert len(page.text) <= 300 * CHARS_PER_TOKEN
    assert 0 < page.count < MAX_READ_LIMIT and page.next_offset == 1000 + page.count
    assert _fenced_rows(page.text)[1] == full_rows[1000 : 1000 + page.count]
    assert f"next_offset={page.next_offset}" in page.text
    last = await read_result(store, owner="admin", result_id=shaped.artifact_id, offset=49_998, limit=10)
    assert last.count == 2 and last.next_offset is None and _fenced_rows(last.text)[1] == full_rows[-2:]


# --- small results, errors, charts ---------------------------------------------------------------------


async def test_small_result_is_shown_whole_without_a_note_and_still_kept(served: Served, alice_id: str) -> None:
    result = await _call(served, alice_id, "getData", {"prompt": "orders by month"})
    assert result.structured_content is not None
    header, *rows = _parse(result.structured_content["csv"])
    store = MemoryArtifactStore()

    shaped = await shape_result(result, tool="getData", owner=alice_id, artifacts=store)

    assert not shaped.is_error
    assert _fenced_rows(shaped.text) == (header, rows)
    assert shaped.shown_rows == shaped.row_count == len(rows) > 20
    assert "read_result" not in shaped.text and "Showing rows" not in shaped.text
    assert f"Open in Omni: {result.structured_content['omniChatUrl']}" in shaped.text
    assert shaped.summary == f"{len(rows)} rows, 2 columns"
    assert shaped.artifact_id is not None  # kept for charts and downloads all the same
    stored = await store.get(shaped.artifact_id, owner=alice_id)
    assert stored is not None and stored.columns == header and stored.row_count == len(rows)


async def test_error_result_passes_through_as_an_error(served: Served, alice_id: str) -> None:
    result = await _call(
        served, alice_id, "getData", {"prompt": "gross margin by category", "topicName": "product_margins"}
    )
    assert result.is_error
    store = MemoryArtifactStore()

    shaped = await shape_result(result, tool="getData", owner=alice_id, artifacts=store)

    original = result.content[0]
    assert isinstance(original, TextContent) and original.text.startswith("403 Forbidden")
    assert shaped.is_error
    assert shaped.content == [{"type": "text", "text": original.text}]
    assert shaped.summary == f"error: {original.text}"
    assert shaped.artifact_id is None and shaped.chart is None and len(store) == 0


async def test_long_error_text_is_cut_to_the_budget() -> None:
    result = CallToolResult(content=[TextContent(type="text", text="500 Internal: " + "x" * 9000)], is_error=True)

    shaped = await shape_result(result, tool="getData", owner="u", budget_tokens=500, artifacts=MemoryArtifactStore())

    assert shaped.is_error and shaped.text.startswith("500 Internal: xxx") and len(shaped.text) <= 2000


async def test_chart_is_derived_for_one_label_and_one_numeric_column(served: Served) -> None:
    result = await _call(served, None, "getData", {"prompt": "revenue by region"})
    assert result.structured_content is not None
    _, *rows = _parse(result.structured_content["csv"])

    shaped = await shape_result(result, tool="getData", owner="admin", artifacts=MemoryArtifactStore())

    assert shaped.chart is not None
    assert shaped.chart.x_label == "Region"
    [series] = shaped.chart.series
    assert series.name == "Total Revenue"
    assert [(p.x, p.y) for p in series.points] == [(region, float(value)) for region, value in rows]
    assert len(series.points) == 4


async def test_no_chart_for_a_table_with_two_label_columns(served: Served) -> None:
    result = await _call(served, None, "getData", {"prompt": "revenue by category and region"})
    assert result.structured_content is not None
    assert len(result.structured_content["fields"]) == 3

    shaped = await shape_result(result, tool="getData", owner="admin", artifacts=MemoryArtifactStore())

    assert shaped.row_count is not None and shaped.row_count > 1
    assert shaped.chart is None


async def test_completed_job_table_is_found_in_check_status(served: Served, alice_id: str) -> None:
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=alice_id)) as client:
        job = await client.call_tool("askOmni", {"prompt": "revenue by category"})
        assert job.structured_content is not None
        status = await client.call_tool("checkStatus", {"jobId": job.structured_content["jobId"]})
        while status.structured_content is not None and status.structured_content["state"] not in _TERMINAL:
            status = await client.call_tool("checkStatus", {"jobId": job.structured_content["jobId"]})
    assert status.structured_content is not None and status.structured_content["state"] == "COMPLETE"
    action = status.structured_content["result"]["actions"][0]["result"]
    header, *rows = _parse(action["csvResult"])

    shaped = await shape_result(status, tool="checkStatus", owner=alice_id, artifacts=MemoryArtifactStore())

    assert shaped.row_count == len(rows) and _fenced_rows(shaped.text) == (header, rows)
    assert shaped.chart is not None and [p.x for p in shaped.chart.series[0].points] == [r[0] for r in rows]
    assert status.structured_content["resultSummary"].splitlines()[0] in shaped.text  # Omni's message is kept


# --- read_result ---------------------------------------------------------------------------------------


async def test_read_result_is_isolated_per_owner(served: Served, alice_id: str, bob_id: str) -> None:
    result = await _call(served, alice_id, "getData", {"prompt": "revenue by state"})
    store = MemoryArtifactStore()
    shaped = await shape_result(result, tool="getData", owner=alice_id, artifacts=store)
    assert shaped.artifact_id is not None

    own = await read_result(store, owner=alice_id, result_id=shaped.artifact_id, limit=2)
    assert own.count == 2
    with pytest.raises(ResultNotFound) as theirs:
        await read_result(store, owner=bob_id, result_id=shaped.artifact_id)
    with pytest.raises(ResultNotFound) as unknown:
        await read_result(store, owner=bob_id, result_id="res_doesnotexist")
    assert isinstance(theirs.value, LookupError)
    assert str(theirs.value).replace(shaped.artifact_id, "ID") == str(unknown.value).replace("res_doesnotexist", "ID")


@pytest.mark.parametrize(
    ("offset", "limit", "message"),
    [
        (-1, 10, "offset must be an integer of 0 or more"),
        (0, 0, "limit must be an integer from 1 to 1000"),
        (0, 1001, "limit must be an integer from 1 to 1000"),
    ],
)
async def test_read_result_refuses_bad_ranges(served: Served, offset: int, limit: int, message: str) -> None:
    store = MemoryArtifactStore()
    shaped = await shape_result(
        await _call(served, None, "getData", {"prompt": "revenue by region"}),
        tool="getData",
        owner="admin",
        artifacts=store,
    )
    assert shaped.artifact_id is not None

    with pytest.raises(InvalidReadArguments, match=message):
        await read_result(store, owner="admin", result_id=shaped.artifact_id, offset=offset, limit=limit)


async def test_read_result_past_the_end_is_an_empty_page_with_a_note(served: Served) -> None:
    store = MemoryArtifactStore()
    shaped = await shape_result(
        await _call(served, None, "getData", {"prompt": "revenue by region"}),
        tool="getData",
        owner="admin",
        artifacts=store,
    )
    assert shaped.artifact_id is not None

    page = await read_result(store, owner="admin", result_id=shaped.artifact_id, offset=4)

    assert page.count == 0 and page.next_offset is None and page.total_rows == 4
    assert "No rows at offset 4" in page.text and "has 4 rows (offsets 0-3)" in page.text


def test_read_result_tool_definition() -> None:
    schema = READ_RESULT_TOOL["input_schema"]
    assert READ_RESULT_TOOL["name"] == "read_result" and READ_RESULT_TOOL["description"]
    assert schema["required"] == ["result_id"]
    assert schema["properties"]["result_id"]["type"] == "string"
    assert schema["properties"]["offset"] == {**schema["properties"]["offset"], "type": "integer", "minimum": 0}
    assert (schema["properties"]["limit"]["minimum"], schema["properties"]["limit"]["maximum"]) == (1, 1000)


# --- formats Omni might use instead (its docs do not say how a result's table is encoded) ----------

_AWKWARD = [
    ["Name", "Note", "Amount"],
    ["Smith, John", 'said "hi"', "1,234.50"],
    ["Line\nbreak", "", "$12"],
    ["plain", "x", ""],
]


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(
            CallToolResult(content=[TextContent(type="text", text=f"Here you go:\n```csv\n{_csv_text(_AWKWARD)}```")]),
            id="fenced-csv-in-text",
        ),
        pytest.param(
            CallToolResult(
                content=[
                    TextContent(
                        type="text",
                        text=json.dumps({"rows": [dict(zip(_AWKWARD[0], row, strict=True)) for row in _AWKWARD[1:]]}),
                    )
                ]
            ),
            id="json-rows-in-text",
        ),
        pytest.param(
            CallToolResult(
                content=[TextContent(type="text", text="see rows")],
                structured_content={"data": [dict(zip(_AWKWARD[0], row, strict=True)) for row in _AWKWARD[1:]]},
            ),
            id="json-rows-structured",
        ),
        pytest.param(
            CallToolResult(
                content=[
                    EmbeddedResource(
                        type="resource",
                        resource=TextResourceContents(uri="omni://r/1", mime_type="text/csv", text=_csv_text(_AWKWARD)),
                    )
                ]
            ),
            id="csv-resource",
        ),
    ],
)
async def test_tables_in_other_shapes_are_found_and_page_exactly(result: CallToolResult) -> None:
    store = MemoryArtifactStore()

    shaped = await shape_result(result, tool="getData", owner="u", artifacts=store)

    assert shaped.row_count == 3 and shaped.columns == _AWKWARD[0]
    assert _fenced_rows(shaped.text) == (_AWKWARD[0], _AWKWARD[1:])
    assert shaped.artifact_id is not None
    page = await read_result(store, owner="u", result_id=shaped.artifact_id, offset=1, limit=2)
    assert _fenced_rows(page.text) == (_AWKWARD[0], _AWKWARD[2:])  # quoted commas, quotes and newlines intact


async def test_long_text_is_cut_at_a_line_kept_and_paged_back_exactly() -> None:
    text = "".join(f"line {i}: " + "word " * (i % 7) + "\n" for i in range(3000)) + "x" * 2500
    store = MemoryArtifactStore()

    shaped = await shape_result(
        CallToolResult(content=[TextContent(type="text", text=text)]), tool="searchOmniDocs", owner="u", artifacts=store
    )

    assert len(shaped.text) <= 4000 * CHARS_PER_TOKEN and shaped.row_count is None
    assert shaped.artifact_id is not None
    shown, note = shaped.text.rsplit("\n\n", 1)
    assert text.startswith(shown) and shown.endswith("\n")  # cut at a line boundary
    assert note.startswith("[Cut after line") and shaped.artifact_id in note
    offset = int(re.search(r"offset=(\d+)", note)[1])  # type: ignore[index]
    rest = []
    for page in await _page_through(store, "u", shaped.artifact_id, offset):
        assert page.kind == "text" and len(page.text) <= 4000 * CHARS_PER_TOKEN
        position, lines = page.text.split("\n", 1)
        assert position.startswith(f"[Lines {page.offset + 1:,}-")
        rest.append(lines)
    assert shown + "".join(rest) == text


async def test_short_text_goes_as_is_and_images_pass_through() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    result = CallToolResult(
        content=[
            TextContent(type="text", text="A short answer."),
            ImageContent(type="image", data=png, mime_type="image/png"),
        ]
    )
    store = MemoryArtifactStore()

    shaped = await shape_result(result, tool="searchOmniDocs", owner="u", artifacts=store)

    assert shaped.content == [
        {"type": "text", "text": "A short answer."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
    ]
    assert shaped.artifact_id is None and shaped.row_count is None and len(store) == 0
