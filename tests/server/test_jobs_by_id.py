"""The AI Jobs API read by job id alone, as Omni's embed AI-agent guide calls it, and `modelId` checked as at Omni.

Omni's guide creates a job with `?userId=` and then polls its status, fetches its result and cancels it by
job id alone: an organization key reads any job of its organization. Under a service key the bridge does the
same within the key's tenant. The service runs on loopback (`running_service`), Omni is the sandbox and
Claude the scripted fake.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.sandbox import embed_user_id
from omni_bridge.testing import tool_then_answer
from tests.conftest import Served
from tests.server.service_helpers import KEY, OTHER_TENANT_KEY, REVENUE, Running, running_service

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
ALICE = embed_user_id("alice")
BOB = embed_user_id("bob")
ANSWER = tool_then_answer(REVENUE, answer="Revenue by region: {results}")
TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    yield
    served.sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)


def keyed(svc: Running, key: str = KEY, **headers: str) -> httpx2.AsyncClient:
    """A client as Omni's guide has one: the key only, no end user unless `headers` name one."""
    return httpx2.AsyncClient(base_url=svc.url, headers={"Authorization": f"Bearer {key}", **headers}, timeout=30)


def job_body(**extra: Any) -> dict[str, Any]:
    return {"modelId": ECOMMERCE, "prompt": "What is our revenue by region?", **extra}


async def poll_by_id(client: httpx2.AsyncClient, job_id: str, until: set[str]) -> dict[str, Any]:
    """`GET /api/v1/ai/jobs/{jobId}` with nothing but the key, until the state is one of `until`."""
    async with asyncio.timeout(20):
        while True:
            answer = await client.get(f"/api/v1/ai/jobs/{job_id}")
            assert answer.status_code == 200, answer.text
            status: dict[str, Any] = answer.json()
            if status["state"] in until:
                return status
            await asyncio.sleep(0.02)


async def test_the_guides_calls_create_for_a_user_then_poll_fetch_and_cancel_by_job_id_alone(
    served: Served, tmp_path: Path
) -> None:
    async with running_service(served, tmp_path, responder=ANSWER) as svc, keyed(svc) as omni:
        created = await omni.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())
        assert created.status_code == 201, created.text
        job_id = created.json()["jobId"]

        status = await poll_by_id(omni, job_id, TERMINAL)
        result = await omni.get(f"/api/v1/ai/jobs/{job_id}/result")
        cancel = await omni.post(f"/api/v1/ai/jobs/{job_id}/cancel")

        # A running job stops when cancelled by its id alone too.
        served.sandbox.set_faults(slow_tool_seconds=60, slow_tool_name="getData")
        slow = (await omni.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())).json()["jobId"]
        await poll_by_id(omni, slow, {"EXECUTING"})
        stopping = await omni.post(f"/api/v1/ai/jobs/{slow}/cancel")
        stopped = await poll_by_id(omni, slow, TERMINAL)

    assert status["state"] == "COMPLETE" and status["id"] == job_id and status["userId"] == ALICE
    assert result.status_code == 200, result.text
    assert result.json()["message"] == status["resultSummary"] and "West" in result.json()["message"]
    assert (cancel.status_code, cancel.json()) == (200, {"jobId": job_id, "state": "COMPLETE"})
    assert stopping.status_code == 200 and stopping.json()["jobId"] == slow
    assert stopped["state"] == "CANCELLED" and stopped["cancelledBy"] == ALICE


async def test_by_job_id_alone_another_tenants_job_is_not_found(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    async with running_service(served, tmp_path, responder=ANSWER, bridge_store_url=store_url) as svc:
        async with keyed(svc) as acme, keyed(svc, OTHER_TENANT_KEY) as globex:
            created = await acme.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())
            job_id = created.json()["jobId"]
            await poll_by_id(acme, job_id, TERMINAL)
            nobodys = str(uuid.uuid4())
            answers = {}
            for method, path in [("GET", ""), ("GET", "/result"), ("POST", "/cancel")]:
                answers[path] = await globex.request(method, f"/api/v1/ai/jobs/{job_id}{path}")
                missing = await acme.request(method, f"/api/v1/ai/jobs/{nobodys}{path}")
                assert (missing.status_code, missing.json()) == (
                    404,
                    {"detail": f"Job {nobodys} not found", "status": 404},
                )
            mine = await acme.get(f"/api/v1/ai/jobs/{job_id}")

    for path, answer in answers.items():
        assert (answer.status_code, answer.json()) == (404, {"detail": f"Job {job_id} not found", "status": 404}), path
    assert mine.json()["state"] == "COMPLETE"


async def test_a_named_user_must_be_the_jobs_owner(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=ANSWER) as svc, keyed(svc) as omni:
        job_id = (await omni.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())).json()["jobId"]
        await poll_by_id(omni, job_id, TERMINAL)
        missing = {"detail": f"Job {job_id} not found", "status": 404}
        async with keyed(svc, **{"X-Bridge-User": "bob"}) as bob, keyed(svc, **{"X-Bridge-User": "alice"}) as alice:
            for method, path in [("GET", ""), ("GET", "/result"), ("POST", "/cancel")]:
                url = f"/api/v1/ai/jobs/{job_id}{path}"
                as_bob = await omni.request(method, url, params={"userId": BOB})
                assert (as_bob.status_code, as_bob.json()) == (404, missing), (method, path)
                bobs = await bob.request(method, url)
                assert (bobs.status_code, bobs.json()) == (404, missing), (method, path)
                assert (await omni.request(method, url, params={"userId": ALICE})).status_code == 200, (method, path)
                assert (await alice.request(method, url)).status_code == 200, (method, path)


async def test_an_unknown_model_id_is_omnis_404_and_any_model_omni_lists_is_taken(
    served: Served, tmp_path: Path
) -> None:
    async with httpx2.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {served.org_key}"}) as omni:
        listed = [m["id"] for m in (await omni.get("/api/v1/models", params={"modelKind": "SHARED"})).json()["records"]]
    other = next(model for model in listed if model != ECOMMERCE)
    unknown = str(uuid.uuid4())
    async with running_service(served, tmp_path, responder=ANSWER) as svc, keyed(svc) as client:
        refused = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(modelId=unknown))
        upper = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(modelId=unknown.upper()))
        taken = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(modelId=other))
        threads = (await client.get("/v1/threads", headers={"X-Bridge-User": "alice"})).json()["data"]

    assert (refused.status_code, refused.json()) == (404, {"detail": f"Model {unknown} not found", "status": 404})
    assert upper.json() == refused.json()
    assert taken.status_code == 201, taken.text
    assert [t["id"] for t in threads] == [taken.json()["conversationId"]]  # the refused ones started nothing
