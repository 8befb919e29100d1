"""The thread API returns Omni's chart page as a typed `chart_page` part: polled, streamed, stored, described."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import Served
from tests.server.service_helpers import data_of, faults, read_events, running_service, wait_for_response


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    faults(served)
    yield


async def test_an_answer_of_omnis_agent_carries_its_chart_page_as_a_typed_part_kept_with_the_thread(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    async with running_service(served, tmp_path, bridge_store_url=store_url) as svc:
        async with svc.client("alice") as alice, svc.client("bob") as bob:
            created = await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}, "engine": "omni"})
            ids = data_of(created)
            frames = await read_events(alice, ids["response_id"])
            done = await wait_for_response(alice, ids["response_id"])
            messages = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/messages"))
            strangers = await bob.get(f"/v1/threads/{ids['thread_id']}/messages")

    assert done["status"] == "succeeded"
    (page,) = [p for p in done["parts"] if p["type"] == "chart_page"]
    assert set(page) == {"type", "job_id", "html", "title"} and page["title"] == "revenue by region"
    assert page["html"].startswith("<!doctype html>") and "West" in page["html"] and "East" not in page["html"]
    assert [m["parts"] for m in messages if m["role"] == "assistant"] == [done["parts"]]  # kept in the store
    ready = [data for _, kind, data in frames if kind == "chart_page_ready"]
    assert [r["page"] for r in ready] == [page]  # streamed when it was fetched
    assert strangers.status_code == 404


async def test_the_openapi_document_describes_the_chart_page_part(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path) as svc:
        async with httpx2.AsyncClient(base_url=svc.url) as client:
            schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    part = schemas["ChartPagePart"]
    assert part["properties"]["type"]["const"] == "chart_page"
    assert part["properties"]["html"]["maxLength"] == 200_000
    assert set(part["required"]) >= {"job_id", "html"}
    refs = {ref["$ref"] for ref in schemas["MessageOut"]["properties"]["parts"]["items"]["oneOf"]}
    assert "#/components/schemas/ChartPagePart" in refs
