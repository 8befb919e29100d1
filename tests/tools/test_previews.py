"""Preview label rows found and taken out (`split_preview`); the query-run client on result shapes Omni may send.

`split_preview` is a pure function of the CSV text; the client is run over loopback HTTP against a small server
that answers `POST /api/v1/query/run` the ways Omni's undocumented JSON result might look.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.exceptions import OmniError, OmniHTTPError
from omni_bridge.tools import OmniRestClient, complete_preview, split_preview

PREVIEW = (
    "Customer,Region,Revenue\n"
    "FIRST\n"
    "Ann,West,10\nBea,West,9\n"
    '"SAMPLED 2 ROWS FROM MIDDLE"\n'
    "Cy,West,5\nDi,West,4\n"
    "LAST\n"
    "Ed,West,1\n"
)


def test_label_rows_are_taken_out_and_counted() -> None:
    table, sections = split_preview(PREVIEW, truncated=True)
    assert table == "Customer,Region,Revenue\nAnn,West,10\nBea,West,9\nCy,West,5\nDi,West,4\nEd,West,1\n"
    assert [(s.label, s.rows) for s in sections] == [("FIRST", 2), ("SAMPLED 2 ROWS FROM MIDDLE", 2), ("LAST", 1)]


@pytest.mark.parametrize(
    ("text", "truncated"),
    [
        ("Region,Revenue\nWest,10\nEast,9\n", True),  # no labels: unchanged
        ("Status\nFIRST\nLAST\n", False),  # a one-column table whose values read like labels, not flagged
        ("Customer,Revenue\nFIRST,1\nLAST,2\n", True),  # two cells: data, even with a label's word
    ],
)
def test_data_that_only_looks_like_labels_stays_data(text: str, truncated: bool) -> None:
    assert split_preview(text, truncated=truncated) == (text, ())


def test_a_one_column_preview_flagged_truncated_loses_its_labels() -> None:
    table, sections = split_preview("Status\nFIRST\ncomplete\nLAST\nreturned\n", truncated=True)
    assert table == "Status\ncomplete\nreturned\n" and [s.label for s in sections] == ["FIRST", "LAST"]


async def test_a_preview_without_its_query_stays_partial_and_says_why() -> None:
    table, completeness = await complete_preview(PREVIEW, {"csvResultWasTruncated": True, "totalRowCount": 40}, None)
    assert "FIRST" not in table and completeness.partial and completeness.total_rows == 40
    note = completeness.note()
    assert note is not None and note.startswith("PARTIAL TABLE")
    assert "the first 2 rows, 2 rows sampled from the middle and the last 1 row (5 of 40 rows)" in note


QUERY = {"modelId": "m", "table": "order_items", "fields": ["customers.name", "order_items.total_revenue"]}
ROWS = [{"order_items.total_revenue": "10.50", "customers.name": "Ann"}, {"customers.name": "Bo, Jr."}]


@pytest.mark.parametrize(
    "result",
    [
        ROWS,  # row objects (the sandbox's guess)
        json.dumps(ROWS),  # the same as JSON text
    ],
)
async def test_the_client_turns_json_rows_into_csv_in_the_querys_field_order(result: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def run(request: Request) -> Response:
        seen.append(await request.json())
        return JSONResponse({"completedQueries": [{"job_id": "j", "result": result}], "jobIds": ["j"]})

    async with serve_asgi(Starlette(routes=[Route("/api/v1/query/run", run, methods=["POST"])])) as url:
        async with OmniRestClient(url, "org-key") as omni:
            rows = await omni.run_query(QUERY, user_id="u-1", header=["Customer", "Revenue"])
    assert rows.csv == 'Customer,Revenue\nAnn,10.50\n"Bo, Jr.",\n' and rows.row_count == 2
    assert seen == [{"query": QUERY, "resultType": "json", "userId": "u-1"}]


async def test_the_client_reports_a_refusal_a_timeout_and_an_unreadable_result() -> None:
    answers = iter(
        [
            JSONResponse({"detail": "Forbidden", "status": 403}, status_code=403),
            JSONResponse({"completedQueries": [{"timed_out": True}], "jobIds": []}),
            JSONResponse({"completedQueries": [{"result": "AAAAQXJyb3c="}], "jobIds": []}),  # base64 Arrow
            JSONResponse({"jobIds": []}),
        ]
    )

    async def run(request: Request) -> Response:
        return next(answers)

    async with serve_asgi(Starlette(routes=[Route("/api/v1/query/run", run, methods=["POST"])])) as url:
        async with OmniRestClient(url, "org-key", max_retries=0) as omni:
            with pytest.raises(OmniHTTPError) as refused:
                await omni.run_query(QUERY)
            assert refused.value.status == 403
            with pytest.raises(OmniError, match="timed out"):
                await omni.run_query(QUERY)
            with pytest.raises(OmniError, match="not rows of the query's 2 fields"):
                await omni.run_query(QUERY)  # text that is not JSON rows, nor CSV of the query's fields
            with pytest.raises(OmniError, match="no completed query"):
                await omni.run_query(QUERY)
