"""The Omni-compatible AI Jobs API, driven the way Omni documents it: create, poll, result, cancel, webhooks.

The service runs on loopback (`running_service`), Omni is the sandbox and Claude the scripted fake. Where a
client "written for Omni" is needed, it is the bridge's own `OmniRestClient`, which parses every answer with
the models of Omni's documented bodies: pointed at the bridge with a service key instead of an Omni key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.agent.events import Event, TextPart, ToolCallFinished, ToolCallStarted
from omni_bridge.exceptions import OmniHTTPError
from omni_bridge.sandbox import embed_user_id
from omni_bridge.server._jobs_models import JobFacts, build_result
from omni_bridge.stores import Owner, ResponseRecord
from omni_bridge.testing import error_reply, tool_then_answer
from omni_bridge.tools import JobState, JobStatus, OmniRestClient
from tests.conftest import Served
from tests.server.service_helpers import KEY, OTHER_TENANT_KEY, REVENUE, Running, data_of, running_service

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
ALICE = embed_user_id("alice")
BOB = embed_user_id("bob")
SECRET = "whsec-jobs-DO-NOT-LEAK-5c2e91"
ANSWER = tool_then_answer(REVENUE, answer="Revenue by region: {results}")
ANY_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ALWAYS = {
    "id",
    "state",
    "prompt",
    "conversationId",
    "modelId",
    "branchId",
    "organizationId",
    "userId",
    "topicName",
    "omniChatUrl",
    "createdAt",
    "updatedAt",
}


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    yield
    served.sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)


def omni_client(svc: Running, *, key: str = KEY, user: str | None = None) -> httpx2.AsyncClient:
    """A plain HTTP client as an Omni integration has one: a bearer key, and the user in `?userId=` per call."""
    headers = {"Authorization": f"Bearer {key}"}
    if user is not None:
        headers["X-Bridge-User"] = user
    return httpx2.AsyncClient(base_url=svc.url, headers=headers, timeout=30)


def job_body(**extra: Any) -> dict[str, Any]:
    return {"modelId": ECOMMERCE, "prompt": "What is our revenue by region?", **extra}


async def poll_status(
    client: httpx2.AsyncClient, job_id: str, until: set[str], *, user_id: str | None = ALICE, seconds: float = 20
) -> dict[str, Any]:
    """Poll the status as Omni suggests (here every 20 ms) until the state is one of `until`."""
    params = {"userId": user_id} if user_id else {}
    async with asyncio.timeout(seconds):
        while True:
            answer = await client.get(f"/api/v1/ai/jobs/{job_id}", params=params)
            assert answer.status_code == 200, answer.text
            status: dict[str, Any] = answer.json()
            if status["state"] in until:
                return status
            await asyncio.sleep(0.02)


async def poll_job(omni: OmniRestClient, job_id: str, user_id: str) -> JobStatus:
    async with asyncio.timeout(20):
        while True:
            status = await omni.get_job(job_id, user_id=user_id)
            if status.state.terminal:
                return status
            await asyncio.sleep(0.02)


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Omni's documented webhook signature, computed here with `hmac`/`hashlib` only."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class Receiver:
    """A tiny webhook receiver on loopback: records every request, and wakes whoever waits for one."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        self.arrived.set()
        return JSONResponse({"ok": True})

    async def wait_for(self, status: str, *, seconds: float = 10) -> None:
        """Until an event with this `status` has arrived."""
        async with asyncio.timeout(seconds):
            while not any(json.loads(body)["status"] == status for _, body in self.received):
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    async with serve_asgi(Starlette(routes=[Route("/hook", recv.hook, methods=["POST"])])) as url:
        recv.url = url + "/hook"
        yield recv


# --- the whole life of a job ------------------------------------------------------------------------------------


async def test_a_client_written_for_omni_runs_a_job_through_the_bridge(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=ANSWER) as svc:
        async with OmniRestClient(svc.url, KEY) as omni:
            created = await omni.create_job(model_id=ECOMMERCE, prompt="What is our revenue by region?", user_id=ALICE)
            uuid.UUID(created.job_id), uuid.UUID(created.conversation_id)
            assert created.omni_chat_url == f"{svc.url}/?thread={created.conversation_id}"

            status = await poll_job(omni, created.job_id, ALICE)
            assert status.state is JobState.COMPLETE
            assert (status.id, status.conversation_id, status.user_id) == (
                created.job_id,
                created.conversation_id,
                ALICE,
            )
            assert status.model_id == ECOMMERCE and status.branch_id is None and status.topic_name is None
            assert status.prompt == "What is our revenue by region?"
            assert status.omni_chat_url == created.omni_chat_url
            uuid.UUID(status.organization_id or "")
            assert status.created_at and status.execution_started_at and status.completed_at and status.updated_at
            assert status.result_summary and "West" in status.result_summary and "East" not in status.result_summary
            assert status.progress is None and status.error is None and status.cancelled_at is None

            result = await omni.get_job_result(created.job_id, user_id=ALICE)
            assert result.message == result.result_summary == status.result_summary
            assert result.omni_chat_url == created.omni_chat_url
            assert [a.type for a in result.actions] == ["generate_query", "summarize"]
            [query] = result.query_results
            assert query.status == "success" and query.has_results and not query.csv_result_was_truncated
            assert query.csv_result is not None and query.csv_result.splitlines()[0].count(",") >= 1
            assert "West" in query.csv_result and "East" not in query.csv_result  # alice's rows only
            assert query.total_row_count == len(query.csv_result.strip().splitlines()) - 1
            assert query.query and query.result_id
            assert "getData" in (result.actions[0].message or "") and result.actions[0].timestamp

            # A follow-up continues the conversation; the job before it is still there as it was.
            again = await omni.create_job(
                model_id=ECOMMERCE, prompt="And again?", user_id=ALICE, conversation_id=created.conversation_id
            )
            assert again.conversation_id == created.conversation_id and again.job_id != created.job_id
            assert (await poll_job(omni, again.job_id, ALICE)).state is JobState.COMPLETE
            assert (await omni.get_job(created.job_id, user_id=ALICE)).result_summary == status.result_summary

        # The same job seen with the bridge's own way of naming the user, and as a thread of the web API.
        async with omni_client(svc, user="alice") as alice:
            raw = await alice.get(f"/api/v1/ai/jobs/{created.job_id}")
            assert raw.status_code == 200
            body = raw.json()
            assert set(body) == ALWAYS | {"executionStartedAt", "resultSummary", "completedAt"}
            assert body["state"] == "COMPLETE" and body["userId"] == ALICE
            assert ANY_TIME.fullmatch(body["completedAt"])
            messages = data_of(await alice.get(f"/v1/threads/{created.conversation_id}/messages"))
            assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


async def test_with_omnis_own_agent_answering_the_result_carries_its_query_rows(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, bridge_engine="omni") as svc, omni_client(svc) as client:
        created = await client.post("/api/v1/ai/jobs", params={"userId": BOB}, json=job_body())
        assert created.status_code == 201, created.text
        job_id = created.json()["jobId"]
        status = await poll_status(client, job_id, {"COMPLETE", "FAILED", "CANCELLED"}, user_id=BOB)
        result = (await client.get(f"/api/v1/ai/jobs/{job_id}/result", params={"userId": BOB})).json()

    assert status["state"] == "COMPLETE" and status["userId"] == BOB
    assert [a["type"] for a in result["actions"]] == ["generate_query", "summarize"]
    query = result["actions"][0]["result"]
    assert "East" in query["csvResult"] and "West" not in query["csvResult"]  # bob's region only
    assert query["status"] == "success" and query["hasResults"] and query["query"]
    assert result["topic"] and result["message"] == status["resultSummary"]


async def test_a_running_job_can_be_cancelled_and_its_conversation_takes_one_job_at_a_time(
    served: Served, tmp_path: Path
) -> None:
    served.sandbox.set_faults(slow_tool_seconds=60, slow_tool_name="getData")
    async with running_service(served, tmp_path, responder=ANSWER) as svc, omni_client(svc) as client:
        created = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())
        assert created.status_code == 201, created.text
        job = created.json()
        job_id, conversation_id = job["jobId"], job["conversationId"]

        running = await poll_status(client, job_id, {"EXECUTING"})
        progress = running["progress"]
        async with asyncio.timeout(10):
            while progress is None or progress["message"] != "Running getData":
                progress = (await poll_status(client, job_id, {"EXECUTING"}))["progress"]
        assert progress["iteration"] == 1 and progress["updatedAt"]
        assert set(running) >= ALWAYS | {"executionStartedAt", "progress"}
        assert "completedAt" not in running and "resultSummary" not in running

        busy = await client.post(
            "/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(conversationId=conversation_id)
        )
        assert busy.status_code == 409
        assert busy.json() == {"detail": "An active job already exists for this conversation", "status": 409}

        cancel = await client.post(f"/api/v1/ai/jobs/{job_id}/cancel", params={"userId": ALICE})
        assert cancel.status_code == 200
        assert cancel.json()["jobId"] == job_id and cancel.json()["state"] in ("EXECUTING", "CANCELLED")

        cancelled = await poll_status(client, job_id, {"CANCELLED", "COMPLETE", "FAILED"})
        assert cancelled["state"] == "CANCELLED"
        assert cancelled["cancelledBy"] == ALICE and cancelled["cancelledAt"]
        assert not {"completedAt", "resultSummary", "progress", "error"} & set(cancelled)
        again = await client.post(f"/api/v1/ai/jobs/{job_id}/cancel", params={"userId": ALICE})
        assert again.json() == {"jobId": job_id, "state": "CANCELLED"}
        no_result = await client.get(f"/api/v1/ai/jobs/{job_id}/result", params={"userId": ALICE})
        assert no_result.status_code == 404
        assert no_result.json() == {"detail": f"Job {job_id} has no result: it is CANCELLED", "status": 404}

        # Once the job is over, the conversation takes the next one.
        served.sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None)
        follow_up = await client.post(
            "/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body(conversationId=conversation_id)
        )
        assert follow_up.status_code == 201 and follow_up.json()["conversationId"] == conversation_id
        done = await poll_status(client, follow_up.json()["jobId"], {"COMPLETE", "FAILED", "CANCELLED"})
        assert done["state"] == "COMPLETE"


async def test_a_failed_job_reports_its_error_as_omni_does(served: Served, tmp_path: Path, receiver: Receiver) -> None:
    body = job_body(webhookUrl=receiver.url, webhookSigningSecret=SECRET)
    refuse = error_reply(400, message="prompt is too long")
    async with running_service(
        served, tmp_path, responder=lambda _request: refuse, bridge_webhook_allow=("127.0.0.1",)
    ) as svc:
        async with omni_client(svc) as client:
            created = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=body)
            failed = await poll_status(client, created.json()["jobId"], {"FAILED", "COMPLETE", "CANCELLED"})
            await receiver.wait_for("FAILED")

    assert failed["state"] == "FAILED" and failed["completedAt"]
    assert failed["error"] == {
        "message": "The language model is unavailable (invalid_request_error, HTTP 400).",
        "code": "INVALID_REQUEST_ERROR",
        "detail": "The language model is unavailable (invalid_request_error, HTTP 400).",
    }
    assert "resultSummary" not in failed
    [(headers, raw)] = receiver.received
    assert headers["x-omni-signature"] == independent_signature(SECRET, headers["x-omni-signature-timestamp"], raw)
    payload = json.loads(raw)
    assert payload["status"] == "FAILED" and payload["result_summary"] is None and payload["metadata"] is None
    assert payload["error"] == failed["error"] and payload["completed_at"] == failed["completedAt"]


# --- webhooks ------------------------------------------------------------------------------------------------------


async def test_webhooks_arrive_signed_exactly_like_omnis(
    served: Served,
    tmp_path: Path,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="omni_bridge")
    body = job_body(
        webhookUrl=receiver.url,
        webhookSigningSecret=SECRET,
        webhookMetadata={"ticket": 42, "channel": "support"},
        progressWebhookEnabled=True,
    )
    async with running_service(served, tmp_path, responder=ANSWER, bridge_webhook_allow=("127.0.0.1",)) as svc:
        async with omni_client(svc) as client:
            created = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=body)
            assert created.status_code == 201, created.text
            job_id = created.json()["jobId"]
            status = await poll_status(client, job_id, {"COMPLETE", "FAILED", "CANCELLED"})
            await receiver.wait_for("COMPLETE")
            answers = [
                created.text,
                (await client.get(f"/api/v1/ai/jobs/{job_id}", params={"userId": ALICE})).text,
                (await client.get(f"/api/v1/ai/jobs/{job_id}/result", params={"userId": ALICE})).text,
            ]
        async with svc.client("alice") as alice:
            answers.append((await alice.get(f"/v1/responses/{job_id}")).text)
            answers.append((await alice.get(f"/v1/threads/{status['conversationId']}")).text)

    for headers, raw in receiver.received:
        timestamp = headers["x-omni-signature-timestamp"]
        assert headers["x-omni-signature"] == independent_signature(SECRET, timestamp, raw)
        assert headers["content-type"] == "application/json"
    payloads = [json.loads(raw) for _, raw in receiver.received]
    *progress, terminal = payloads
    assert progress and all(p["status"] == "EXECUTING" for p in progress)
    first = progress[0]["progress"]
    assert (first["iteration"], first["message"]) == (1, "Running getData") and ANY_TIME.fullmatch(first["updatedAt"])
    assert all(p["jobId"] == job_id and p["metadata"] == {"ticket": 42, "channel": "support"} for p in progress)
    assert all(re.fullmatch(rf"evt_{job_id.split('-')[0]}_PROGRESS_\d+", p["event_id"]) for p in progress)

    assert set(terminal) == {"event_id", "event", "jobId", "status", "result_summary", "metadata", "completed_at"}
    assert re.fullmatch(rf"evt_{job_id.split('-')[0]}_COMPLETE_\d+", terminal["event_id"])
    assert terminal["jobId"] == job_id and terminal["status"] == "COMPLETE"
    assert terminal["result_summary"] == status["resultSummary"] and "West" in terminal["result_summary"]
    assert terminal["metadata"] == {"ticket": 42, "channel": "support"}
    assert terminal["completed_at"] == status["completedAt"]

    for answer in answers:
        assert SECRET not in answer
    assert SECRET not in caplog.text


async def test_webhook_urls_to_addresses_that_are_not_public_are_refused(served: Served, tmp_path: Path) -> None:
    refusals = {
        "http://127.0.0.1:9/hook": "the host '127.0.0.1' is a loopback address",
        "http://10.20.30.40/hook": "the host '10.20.30.40' is a private address",
        "http://169.254.169.254/latest/meta-data": "the host '169.254.169.254' is a link-local address",
        "http://[::1]:8080/hook": "the host '::1' is a loopback address",
        "http://localhost:8080/hook": "the host 'localhost' resolves to",
    }
    async with running_service(served, tmp_path, responder=ANSWER) as svc, omni_client(svc) as client:
        for url, why in refusals.items():
            body = job_body(webhookUrl=url, webhookSigningSecret=SECRET)
            answer = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=body)
            assert answer.status_code == 400, url
            detail = answer.json()["detail"]
            assert detail.startswith("Bad Request: webhookUrl: ") and why in detail, detail
            assert SECRET not in answer.text
        async with svc.client("alice") as alice:
            assert data_of(await alice.get("/v1/threads")) == []  # nothing was started


# --- who may see what ------------------------------------------------------------------------------------------


async def test_another_user_or_tenant_cannot_see_cancel_or_continue_a_job(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    async with running_service(served, tmp_path, responder=ANSWER, bridge_store_url=store_url) as svc:
        async with omni_client(svc) as client, omni_client(svc, key=OTHER_TENANT_KEY) as globex:
            created = (await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())).json()
            job_id = created["jobId"]
            await poll_status(client, job_id, {"COMPLETE", "FAILED", "CANCELLED"})
            missing = {"detail": f"Job {job_id} not found", "status": 404}

            for who, params in [(client, {"userId": BOB}), (globex, {"userId": ALICE})]:
                for method, path in [("GET", ""), ("GET", "/result"), ("POST", "/cancel")]:
                    answer = await who.request(method, f"/api/v1/ai/jobs/{job_id}{path}", params=params)
                    assert (answer.status_code, answer.json()) == (404, missing), (method, path)
            async with omni_client(svc, user="bob") as bob:
                assert (await bob.get(f"/api/v1/ai/jobs/{job_id}")).status_code == 404
                stolen = await bob.post("/api/v1/ai/jobs", json=job_body(conversationId=created["conversationId"]))
                assert stolen.status_code == 404
                assert stolen.json()["detail"] == f"Conversation {created['conversationId']} not found"

            mine = await client.get(f"/api/v1/ai/jobs/{job_id}", params={"userId": ALICE})
            assert mine.json()["state"] == "COMPLETE"


# --- bad input -------------------------------------------------------------------------------------------------


async def test_bad_requests_get_omnis_errors_never_a_5xx(served: Served, tmp_path: Path) -> None:
    unknown_user = str(uuid.uuid4())
    async with running_service(served, tmp_path, responder=ANSWER) as svc, omni_client(svc) as client:
        as_alice = {"userId": ALICE}
        cases: list[tuple[dict[str, Any], Any, int, str]] = [
            (as_alice, {"modelId": ECOMMERCE}, 400, "Bad Request: prompt: Required"),
            (as_alice, {"prompt": "hi"}, 400, "Bad Request: modelId: Required"),
            (as_alice, job_body(modelId="x-1"), 400, "Bad Request: modelId: Input should be a valid UUID"),
            (as_alice, job_body(prompt="   "), 400, "Bad Request: prompt: String should have at least 1"),
            (as_alice, job_body(webhookUrl="https://example.com/h"), 400, "Bad Request: webhookSigningSecret is"),
            (as_alice, job_body(progressWebhookEnabled=True), 400, "Bad Request: progressWebhookEnabled"),
            (as_alice, job_body(webhookUrl="ftp://x/h", webhookSigningSecret="s"), 400, "Bad Request: webhookUrl: URL"),
            (as_alice, job_body(conversationId="c-1"), 400, "Bad Request: conversationId: Input should be"),
            (as_alice, [job_body()], 400, "Bad Request: the body must be a JSON object"),
            ({"userId": "alice"}, job_body(), 400, "Bad Request: userId must be a UUID, got 'alice'"),
            ({"userId": unknown_user}, job_body(), 404, f"User {unknown_user} not found"),
            ({}, job_body(), 400, "Bad Request: name the end user with ?userId="),
        ]
        for params, body, status, detail in cases:
            answer = await client.post("/api/v1/ai/jobs", params=params, json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.json()["status"] == status and answer.json()["detail"].startswith(detail), answer.text

        async with omni_client(svc, user="bob") as bob:
            mixed = await bob.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())
            assert mixed.json() == {
                "detail": "Bad Request: userId and X-Bridge-User name different users",
                "status": 400,
            }
        not_json = await client.post(
            "/api/v1/ai/jobs", params={"userId": ALICE}, content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.json() == {"detail": "Bad Request: Invalid JSON", "status": 400}
        too_big = await client.post("/api/v1/ai/jobs", params={"userId": ALICE}, content=b" " * 22_100_000)
        assert too_big.status_code == 413
        bad_id = await client.get("/api/v1/ai/jobs/not-a-job", params={"userId": ALICE})
        assert bad_id.json() == {"detail": "Bad Request: jobId must be a UUID, got 'not-a-job'", "status": 400}
        nobody = await client.get(f"/api/v1/ai/jobs/{uuid.uuid4()}", params={"userId": ALICE})
        assert nobody.status_code == 404

        for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": f"Basic {KEY}"}):
            async with httpx2.AsyncClient(base_url=svc.url, headers=headers) as anonymous:
                refused = await anonymous.post("/api/v1/ai/jobs", params={"userId": ALICE}, json=job_body())
                assert refused.json() == {"detail": "Unauthorized: Missing or invalid API key", "status": 401}
        async with svc.client("alice") as alice:
            assert data_of(await alice.get("/v1/threads")) == []


async def test_the_jobs_api_is_described_in_the_openapi_document(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=ANSWER) as svc, omni_client(svc) as client:
        document = (await client.get("/openapi.json")).json()

    paths = document["paths"]
    assert paths["/api/v1/ai/jobs"]["post"]["operationId"] == "aiJobSubmit"
    assert paths["/api/v1/ai/jobs/{job_id}"]["get"]["operationId"] == "aiJobStatus"
    assert paths["/api/v1/ai/jobs/{job_id}/result"]["get"]["operationId"] == "aiJobResult"
    assert paths["/api/v1/ai/jobs/{job_id}/cancel"]["post"]["operationId"] == "aiJobCancel"
    schemas = document["components"]["schemas"]
    assert schemas["CreateJobBody"]["properties"]["webhookSigningSecret"]["anyOf"][0]["writeOnly"] is True
    assert {"jobId", "conversationId", "omniChatUrl"} <= set(schemas["JobCreated"]["properties"])


async def test_an_omni_client_sees_omnis_error_type_for_a_busy_conversation(served: Served, tmp_path: Path) -> None:
    served.sandbox.set_faults(slow_tool_seconds=60, slow_tool_name="getData")
    async with running_service(served, tmp_path, responder=ANSWER) as svc, OmniRestClient(svc.url, KEY) as omni:
        first = await omni.create_job(model_id=ECOMMERCE, prompt="Revenue?", user_id=ALICE)
        with pytest.raises(OmniHTTPError) as busy:
            await omni.create_job(
                model_id=ECOMMERCE, prompt="Again?", user_id=ALICE, conversation_id=first.conversation_id
            )
        assert busy.value.status == 409 and busy.value.detail == "An active job already exists for this conversation"
        cancelled = await omni.cancel_job(first.job_id, user_id=ALICE)
        assert cancelled.job_id == first.job_id


# --- the result body, from events alone ----------------------------------------------------------------------------


def test_a_query_whose_table_is_no_longer_kept_still_shows_as_a_query_and_other_tools_as_tool_calls() -> None:
    owner = Owner(tenant="acme", user="alice")
    job = ResponseRecord(
        thread_id=str(uuid.uuid4()),
        owner=owner,
        user_message_id="msg_1",
        prompt="Revenue?",
        status="succeeded",
        origin="job",
        parts=[TextPart(text="West: 1,234")],
    )
    facts = JobFacts(user_id=ALICE, topic_name="order_items", chat_url="http://bridge/?thread=x")
    cid, rid = job.thread_id, job.id
    events: list[Event] = [
        ToolCallStarted(
            conversation_id=cid, response_id=rid, call_id="c1", tool="pickTopic", arguments={"prompt": "Revenue?"}
        ),
        ToolCallFinished(
            conversation_id=cid,
            response_id=rid,
            call_id="c1",
            tool="pickTopic",
            is_error=False,
            summary="order_items",
            elapsed_ms=3,
        ),
        ToolCallStarted(
            conversation_id=cid,
            response_id=rid,
            call_id="c2",
            tool="getData",
            arguments={"prompt": "revenue by region"},
        ),
        ToolCallFinished(
            conversation_id=cid,
            response_id=rid,
            call_id="c2",
            tool="getData",
            is_error=False,
            summary="4 rows",
            result_id="res_gone",
            row_count=4,
            elapsed_ms=9,
        ),
    ]

    result = build_result(job, facts, events, artifacts={}).body()

    assert [a["type"] for a in result["actions"]] == ["tool_call", "generate_query", "summarize"]
    assert result["actions"][0]["message"] == "Ran pickTopic for 'Revenue?': order_items"
    query = result["actions"][1]["result"]
    assert (query["queryName"], query["totalRowCount"], query["hasResults"]) == ("getData", 4, True)
    assert query["csvResult"] == "" and query["csvResultWasTruncated"] and query["resultId"] == "res_gone"
    assert result["topic"] == "order_items" and result["message"] == result["resultSummary"] == "West: 1,234"
