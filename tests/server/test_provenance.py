"""The thread API returns how an answer was computed as a typed `provenance` part, from either engine, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.testing import ToolCall, tool_then_answer
from tests.conftest import Served
from tests.server.service_helpers import data_of, faults, running_service, wait_for_response

LAST_MONTH = ToolCall("getData", {"prompt": "total sales last month"})


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    faults(served)
    yield
    faults(served)


async def ask(svc: Any, user: str, text: str, engine: str) -> dict[str, Any]:
    async with svc.client(user) as client:
        created = await client.post("/v1/threads", json={"message": {"text": text}, "engine": engine})
        assert created.status_code == 201, created.text
        done = await wait_for_response(client, data_of(created)["response_id"])
        assert done["status"] == "succeeded", done
        message: dict[str, Any] = data_of(await client.get(f"/v1/messages/{done['message_id']}"))
        assert message["parts"] == done["parts"]  # the stored message carries the same part
        return message


@pytest.mark.parametrize("engine", ["omni", "claude"])
async def test_an_answer_carries_the_query_behind_its_number(engine: str, served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=tool_then_answer(LAST_MONTH)) as svc:
        alice = await ask(svc, "alice", "total sales last month", engine)
        bob = await ask(svc, "bob", "total sales last month", engine)

    [part] = [p for p in alice["parts"] if p["type"] == "provenance"]
    [query] = part["queries"]
    assert query["topic"] == "order_items" and query["fields"] == ["order_items.total_revenue"]
    assert query["filters"] == {"orders.created_at": "2026-10-01 to 2026-10-31"}  # what "last month" became
    assert query["access_filters"] == {"customers.region": "West"}  # one region's data, and it says so
    assert (query["row_count"], query["rows_cut"], query["cut_reason"]) == (1, False, None)
    assert query["omni_url"].startswith(served.url + "/chat/")
    assert "2026-10-01 to 2026-10-31" in query["summary"] and "customers.region West" in query["summary"]
    [bobs] = [p for p in bob["parts"] if p["type"] == "provenance"]
    assert bobs["queries"][0]["access_filters"] == {"customers.region": "East"}


async def test_a_docs_answer_has_no_provenance_part(served: Served, tmp_path: Path) -> None:
    docs = tool_then_answer(ToolCall("searchOmniDocs", {"question": "what is a topic?"}))
    async with running_service(served, tmp_path, responder=docs) as svc:
        message = await ask(svc, "alice", "what is a topic?", "claude")
    assert "provenance" not in {p["type"] for p in message["parts"]}


async def test_the_openapi_document_describes_the_provenance_part(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path) as svc, httpx2.AsyncClient(base_url=svc.url) as client:
        schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schemas["ProvenancePart"]["properties"]["type"]["const"] == "provenance"
    assert schemas["ProvenancePart"]["properties"]["queries"]["items"] == {
        "$ref": "#/components/schemas/QueryProvenance"
    }
    fields = schemas["QueryProvenance"]["properties"]
    assert {"topic", "fields", "filters", "access_filters", "row_count", "rows_cut", "cut_reason", "omni_url"} <= set(
        fields
    )
    assert fields["summary"]["readOnly"] is True
    parts = schemas["MessageOut"]["properties"]["parts"]["items"]
    assert {"$ref": "#/components/schemas/ProvenancePart"} in parts["oneOf"]


async def test_rows_cut_at_the_row_limit_are_said_to_be_cut(served: Served, tmp_path: Path) -> None:
    by_day = tool_then_answer(ToolCall("getData", {"prompt": "orders by day"}))  # 1,035 days, the limit is 1,000
    async with running_service(served, tmp_path, responder=by_day) as svc:
        message = await ask(svc, "alice", "orders by day", "claude")
    [part] = [p for p in message["parts"] if p["type"] == "provenance"]
    [query] = part["queries"]
    assert (query["row_count"], query["total_row_count"], query["limit"]) == (1000, 1035, 1000)
    assert query["rows_cut"] is True and query["cut_reason"] == "row_limit"
    assert "1,000 rows of 1,035 (cut at the row limit)" in query["summary"]
