"""Large results over loopback HTTP: the AI job's labelled preview, and `POST /api/v1/query/run` running it again.

The preview is what Omni's live job results were seen to hold (label rows `FIRST`, `SAMPLED … FROM MIDDLE`, `LAST`
between the data rows, `csvResultWasTruncated: true`); the query run takes the returned `query` and the same
user rules as the rest of the REST API: an organization key acts for `userId`, a personal token only for itself.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest

from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from tests.conftest import Served

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
LARGE = "revenue by customer and region"


@pytest.fixture(scope="module")
def own() -> Iterator[Served]:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.01))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


@pytest.fixture
async def api(own: Served) -> AsyncIterator[httpx2.AsyncClient]:
    own.sandbox.set_faults(query_run_status=None)
    async with httpx2.AsyncClient(base_url=own.url, headers={"Authorization": f"Bearer {own.org_key}"}) as http:
        yield http


async def job_result(api: httpx2.AsyncClient, prompt: str, user: str) -> dict[str, Any]:
    params = {"userId": embed_user_id(user)}
    created = await api.post("/api/v1/ai/jobs", params=params, json={"modelId": ECOMMERCE, "prompt": prompt})
    assert created.status_code == 201, created.text
    job_id = created.json()["jobId"]
    async with asyncio.timeout(10):
        while True:
            state = (await api.get(f"/api/v1/ai/jobs/{job_id}", params=params)).json()["state"]
            if state == "COMPLETE":
                break
            await asyncio.sleep(0.01)
    result = (await api.get(f"/api/v1/ai/jobs/{job_id}/result", params=params)).json()
    action: dict[str, Any] = result["actions"][0]["result"]
    return action


def records(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_a_large_job_result_is_a_preview_with_label_rows(api: httpx2.AsyncClient) -> None:
    action = await job_result(api, LARGE, "alice")
    rows = records(action["csvResult"])
    assert rows[0] == ["Customer", "Region", "Total Revenue"]
    labels = [(i, row[0]) for i, row in enumerate(rows) if len(row) == 1]
    assert [label for _, label in labels] == ["FIRST", "SAMPLED 100 ROWS FROM MIDDLE", "LAST"]
    assert [i for i, _ in labels] == [1, 102, 203]  # 100 data rows under each label
    assert len(rows) == 1 + 3 + 300 and all(len(row) == 3 for row in rows if len(row) != 1)
    assert action["csvResultWasTruncated"] is True and action["totalRowCount"] == 862
    assert action["query"]["fields"] == ["customers.name", "customers.region", "order_items.total_revenue"]

    small = await job_result(api, "revenue by region", "alice")
    assert small["csvResultWasTruncated"] is False and len(records(small["csvResult"])) == 2  # header and West


async def test_the_query_runs_again_as_the_user_with_json_rows(api: httpx2.AsyncClient, own: Served) -> None:
    query = (await job_result(api, LARGE, "alice"))["query"]
    for user, region in (("alice", "West"), ("bob", "East")):
        body = {"query": query, "userId": embed_user_id(user), "resultType": "json"}
        answer = await api.post("/api/v1/query/run", json=body)
        assert answer.status_code == 200, answer.text
        completed = answer.json()["completedQueries"][0]
        rows = completed["result"]
        assert answer.json()["jobIds"] == [completed["job_id"]] and completed["status"] == "COMPLETE"
        assert len(rows) == completed["totalRowCount"] and {row["customers.region"] for row in rows} == {region}
        assert all(isinstance(row["order_items.total_revenue"], str) for row in rows)  # as Omni's JSON gives them
        if user == "alice":
            assert len(rows) == 862 and own.sandbox.stats.counts[f"query_run.user.{embed_user_id('alice')}"] == 1

    as_csv = await api.post(
        "/api/v1/query/run", json={"query": query, "userId": embed_user_id("bob"), "resultType": "csv"}
    )
    assert records(as_csv.json()["completedQueries"][0]["result"])[0] == ["Customer", "Region", "Total Revenue"]


async def test_the_query_run_keeps_omnis_key_rules_and_refuses_bad_input(api: httpx2.AsyncClient, own: Served) -> None:
    query = (await job_result(api, "revenue by region", "alice"))["query"]
    token = {"Authorization": f"Bearer {own.personal_token}"}
    body = {"query": query, "resultType": "json"}
    refused = await api.post("/api/v1/query/run", json={**body, "userId": embed_user_id("alice")}, headers=token)
    assert refused.status_code == 403 and "cannot act on behalf" in refused.json()["detail"]
    own_rows = await api.post("/api/v1/query/run", json=body, headers=token)  # the token's own user: West
    assert [row["customers.region"] for row in own_rows.json()["completedQueries"][0]["result"]] == ["West"]

    arrow = await api.post("/api/v1/query/run", json={"query": query})
    assert arrow.status_code == 400 and "Apache Arrow" in arrow.json()["detail"]
    broken = await api.post("/api/v1/query/run", json={**body, "query": {**query, "fields": ["nope.nothing"]}})
    assert broken.status_code == 400 and "nope.nothing" in broken.json()["detail"]
    missing = await api.post("/api/v1/query/run", json={"resultType": "json"})
    assert missing.status_code == 400 and "query: Required" in missing.json()["detail"]

    own.sandbox.set_faults(query_run_status=408)
    timed_out = await api.post("/api/v1/query/run", json=body)
    assert timed_out.status_code == 408
