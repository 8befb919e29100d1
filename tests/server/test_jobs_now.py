"""The bridge's Omni-compatible AI Jobs API as Omni documents it now (omni-api.md §6): `job.denied`, no webhook for
a cancelled job, `branchId` and `attachments` passed on to Omni, and the AI conversations API under tenants."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.sandbox import Sandbox, SandboxConfig, demo_branch_id, embed_user_id
from tests.conftest import Served
from tests.server.service_helpers import KEY, OTHER_TENANT_KEY, running_service
from tests.server.test_jobs_api import ANSWER, ECOMMERCE, Receiver, job_body, omni_client, poll_status, receiver

__all__ = ["receiver"]  # the fixture, used here by name

ALICE = embed_user_id("alice")
BOB = embed_user_id("bob")
SECRET = "whsec-now-DO-NOT-LEAK-77"
TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    yield
    served.sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)


@pytest.fixture
async def over_limit() -> AsyncIterator[Served]:
    """A sandbox whose organization has no AI credits left: every job is denied."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.01, ai_credit_limit=0))
    async with sandbox.serve() as url:
        yield Served(sandbox, url)


async def test_a_job_omni_denies_is_failed_with_job_denied_and_its_webhook_says_job_denied(
    over_limit: Served, tmp_path: Path, receiver: Receiver
) -> None:
    hook = {"webhookUrl": receiver.url, "webhookSigningSecret": SECRET, "webhookMetadata": {"ticket": 9}}
    async with (
        running_service(over_limit, tmp_path, bridge_engine="omni", bridge_webhook_allow=("127.0.0.1",)) as svc,
        omni_client(svc) as client,
    ):
        created = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(**hook))
        assert created.status_code == 201, created.text
        status = await poll_status(client, created.json()["jobId"], TERMINAL)
        await receiver.wait_for("FAILED")

    reason = "Omni denied the question: The organization is over its AI credit limit (0 AI jobs)"
    assert status["state"] == "FAILED"
    assert status["error"] == {"message": reason, "code": "JOB_DENIED", "detail": reason, "reason": reason}
    [(_, raw)] = receiver.received
    payload = json.loads(raw)
    assert payload["event"] == "job.denied" and payload["status"] == "FAILED" and payload["reason"] == reason
    assert payload["metadata"] == {"ticket": 9} and "_DENIED_" in payload["event_id"]


async def test_a_cancelled_job_sends_no_webhook_while_others_still_do(
    served: Served, tmp_path: Path, receiver: Receiver
) -> None:
    served.sandbox.set_faults(slow_tool_seconds=60, slow_tool_name="getData")
    hook = {"webhookUrl": receiver.url, "webhookSigningSecret": SECRET}
    async with (
        running_service(served, tmp_path, responder=ANSWER, bridge_webhook_allow=("127.0.0.1",)) as svc,
        omni_client(svc) as client,
    ):
        first = (await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(**hook))).json()
        await poll_status(client, first["jobId"], {"EXECUTING"})
        await client.post(f"/api/v1/ai/jobs/{first['jobId']}/cancel", params={"userId": ALICE})
        assert (await poll_status(client, first["jobId"], TERMINAL))["state"] == "CANCELLED"
        served.sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)
        second = (await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(**hook))).json()
        await receiver.wait_for("COMPLETE")

    payloads = [json.loads(raw) for _, raw in receiver.received]
    assert [p["jobId"] for p in payloads] == [second["jobId"]]
    assert payloads[0]["event"] == "job.complete"


async def test_branch_and_attachments_go_on_to_omni_and_the_branch_is_echoed(served: Served, tmp_path: Path) -> None:
    branch = demo_branch_id(ECOMMERCE)
    attachment = {"data": PNG, "mimeType": "image/png", "name": "q3.png"}
    async with running_service(served, tmp_path, bridge_engine="omni") as svc, omni_client(svc) as client:
        body = job_body(prompt="revenue by region for the branch", branchId=branch, attachments=[attachment])
        created = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=body)
        assert created.status_code == 201, created.text
        status = await poll_status(client, created.json()["jobId"], TERMINAL)

    assert status["state"] == "COMPLETE" and status["branchId"] == branch
    [at_omni] = [j for j in list(served.sandbox.jobs.jobs.values()) if j.prompt == "revenue by region for the branch"]
    assert at_omni.branch_id == branch and at_omni.user_id == ALICE
    assert at_omni.attachments == [{"name": "q3.png", "mimeType": "image/png", "size": len(base64.b64decode(PNG))}]


@pytest.mark.parametrize(
    ("attachments", "detail"),
    [
        ([{"data": "%%%", "mimeType": "image/png"}], "Bad Request: attachments.0.data: must be base64"),
        ([{"data": PNG, "mimeType": "text/html"}], "Bad Request: attachments.0.mimeType: Input should be"),
        ([{"data": PNG, "mimeType": "image/png"}] * 6, "Bad Request: attachments: at most 5 attachments, got 6"),
        (
            [{"data": base64.b64encode(b"\0" * (3 * 1024 * 1024 + 3)).decode(), "mimeType": "image/webp"}],
            "Bad Request: attachments.0: an image may be at most 3145728 bytes, got 3145731",
        ),
    ],
)
async def test_attachments_of_the_wrong_shape_or_size_are_refused_with_a_clear_400(
    served: Served, tmp_path: Path, attachments: list[dict[str, Any]], detail: str
) -> None:
    async with running_service(served, tmp_path, responder=ANSWER) as svc, omni_client(svc) as client:
        answer = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(attachments=attachments))
    assert answer.status_code == 400 and answer.json()["detail"].startswith(detail), answer.text
    assert PNG not in answer.text


# --- the AI conversations API ----------------------------------------------------------------------------------


async def _job(
    client: httpx2.AsyncClient, user: str, prompt: str, conversation_id: str | None = None
) -> dict[str, Any]:
    extra = {"conversationId": conversation_id} if conversation_id else {}
    created = await client.post("/api/v1/ai/jobs", params={"userId": user}, json=job_body(prompt=prompt, **extra))
    assert created.status_code == 201, created.text
    job: dict[str, Any] = created.json()
    await poll_status(client, job["jobId"], TERMINAL, user_id=user)
    return job


async def test_conversations_are_listed_and_read_under_the_key_rules_and_never_across_tenants(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    async with running_service(served, tmp_path, bridge_engine="omni", bridge_store_url=store_url) as svc:
        async with omni_client(svc) as acme, omni_client(svc, key=OTHER_TENANT_KEY) as globex:
            first = await _job(acme, ALICE, "revenue by region")
            follow = await _job(acme, ALICE, "orders by month", first["conversationId"])
            other = await _job(acme, ALICE, "total revenue")
            bobs = await _job(acme, BOB, "revenue by region")
            async with svc.client("alice") as alice:  # a thread of the thread API is no AI conversation
                assert (await alice.post("/v1/threads", json={"message": {"text": "hi"}})).status_code in (
                    200,
                    201,
                    202,
                )

            everyone = (await acme.get("/api/v1/ai/conversations")).json()
            page = (await acme.get("/api/v1/ai/conversations", params={"userId": ALICE, "pageSize": 1})).json()
            rest = await acme.get(
                "/api/v1/ai/conversations",
                params={"userId": ALICE, "pageSize": 1, "cursor": page["pageInfo"]["nextCursor"]},
            )
            async with omni_client(svc, user="bob") as bob:
                bob_only = (await bob.get("/api/v1/ai/conversations")).json()
                bob_reads_alice = await bob.get(f"/api/v1/ai/conversations/{first['conversationId']}")
            history = (await acme.get(f"/api/v1/ai/conversations/{first['conversationId']}")).json()

            globex_list = (await globex.get("/api/v1/ai/conversations")).json()
            globex_names_alice = await globex.get("/api/v1/ai/conversations", params={"userId": ALICE})
            globex_reads = await globex.get(f"/api/v1/ai/conversations/{first['conversationId']}")
            bad = await acme.get("/api/v1/ai/conversations/not-a-uuid")
            bad_cursor = await acme.get("/api/v1/ai/conversations", params={"cursor": "x"})
            async with httpx2.AsyncClient(base_url=svc.url) as nobody:
                anonymous = await nobody.get("/api/v1/ai/conversations")

    ids = [c["id"] for c in everyone["data"]]
    assert ids == [bobs["conversationId"], other["conversationId"], first["conversationId"]]  # newest first
    assert [c["id"] for c in page["data"]] == [other["conversationId"]] and page["pageInfo"]["hasNextPage"]
    assert [c["id"] for c in rest.json()["data"]] == [first["conversationId"]]
    top = next(c for c in everyone["data"] if c["id"] == first["conversationId"])
    assert set(top) == {"id", "name", "lastUserPrompt", "updatedAt", "createdAt"}
    assert top["name"] == "revenue by region" and top["lastUserPrompt"] == "orders by month"
    assert [c["id"] for c in bob_only["data"]] == [bobs["conversationId"]]
    assert bob_reads_alice.status_code == 404

    assert history["userId"] == ALICE and history["id"] == first["conversationId"]
    assert [(m["role"], m.get("jobId")) for m in history["messages"]] == [
        ("user", None),
        ("assistant", first["jobId"]),
        ("user", None),
        ("assistant", follow["jobId"]),
    ]
    assert history["messages"][1]["omniChatUrl"] == first["omniChatUrl"] and history["messages"][1]["content"]

    assert globex_list["data"] == [] and not globex_list["pageInfo"]["hasNextPage"]
    assert globex_names_alice.status_code == 404
    assert globex_reads.json() == {"detail": f"Conversation {first['conversationId']} not found", "status": 404}
    assert bad.status_code == 400 and bad_cursor.status_code == 400
    assert anonymous.status_code == 401
    assert KEY not in json.dumps(everyone)


async def test_the_conversations_routes_are_in_the_openapi_document(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=ANSWER) as svc, omni_client(svc) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/api/v1/ai/conversations"]["get"]["operationId"] == "aiConversationList"
    assert paths["/api/v1/ai/conversations/{conversation_id}"]["get"]["operationId"] == "aiConversationGet"


async def test_a_client_written_for_omni_reads_the_bridges_conversations(served: Served, tmp_path: Path) -> None:
    from omni_bridge.tools import OmniRestClient

    async with running_service(served, tmp_path, bridge_engine="omni") as svc, omni_client(svc) as client:
        job = await _job(client, ALICE, "revenue by region")
        async with OmniRestClient(svc.url, KEY) as omni:
            page = await omni.list_conversations(user_id=ALICE)
            detail = await omni.get_conversation(job["conversationId"], user_id=ALICE)

    assert [c.id for c in page.data] == [job["conversationId"]] and page.data[0].last_user_prompt == "revenue by region"
    assert [m.role for m in detail.messages] == ["user", "assistant"] and detail.messages[1].job_id == job["jobId"]
