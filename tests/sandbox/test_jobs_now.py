"""AI Jobs as Omni documents them now (omni-api.md §6), over loopback HTTP: `job.denied`, no cancelled webhook,
the `failure` action, attachments, `branchId`, the conversations API, and jobs kept across restarts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.sandbox import Sandbox, SandboxConfig, demo_branch_id, embed_user_id
from tests.conftest import Served

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}
ALICE = embed_user_id("alice")
BOB = embed_user_id("bob")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


@dataclass
class Hooks:
    """A webhook receiver on loopback that records every payload."""

    url: str = ""
    payloads: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Request) -> Response:
        self.payloads.append(json.loads(await request.body()))
        self.arrived.set()
        return Response(status_code=204)

    async def wait_for(self, job_id: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                found = [p for p in self.payloads if p["jobId"] == job_id]
                if found:
                    return found[-1]
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    receiver = Hooks()
    async with serve_asgi(Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])) as url:
        receiver.url = url + "/hook"
        yield receiver


@contextlib.asynccontextmanager
async def sandbox_api(config: SandboxConfig) -> AsyncIterator[tuple[Sandbox, httpx2.AsyncClient]]:
    sandbox = Sandbox(config)
    async with sandbox.serve() as url:
        headers = {"Authorization": f"Bearer {config.org_key}"}
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            yield sandbox, http


@pytest.fixture
async def api(served: Served) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        base_url=served.url, headers={"Authorization": f"Bearer {served.org_key}"}, timeout=10
    ) as http:
        yield http


async def create(api: httpx2.AsyncClient, user: str | None = ALICE, **body: Any) -> dict[str, Any]:
    params = {"userId": user} if user else {}
    answer = await api.post("/api/v1/ai/jobs", params=params, json={"modelId": ECOMMERCE, **body})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def finished(api: httpx2.AsyncClient, job_id: str) -> dict[str, Any]:
    """Poll as Omni's own guide does: by job id alone, with the organization key."""
    async with asyncio.timeout(10):
        while True:
            status: dict[str, Any] = (await api.get(f"/api/v1/ai/jobs/{job_id}")).json()
            if status["state"] in TERMINAL:
                return status
            await asyncio.sleep(0.01)


# --- job.denied ---------------------------------------------------------------------------------------------


async def test_a_job_over_the_ai_credit_limit_is_accepted_then_denied_with_a_reason(hooks: Hooks) -> None:
    async with sandbox_api(SandboxConfig(job_step_seconds=0.01, ai_credit_limit=1)) as (_, api):
        first = await create(api, prompt="total revenue")
        assert (await finished(api, first["jobId"]))["state"] == "COMPLETE"
        hook: dict[str, Any] = {
            "webhookUrl": hooks.url,
            "webhookSigningSecret": "s3cret",
            "webhookMetadata": {"ticket": 7},
        }
        second = await create(api, prompt="total revenue", **hook)
        denied = await finished(api, second["jobId"])
        payload = await hooks.wait_for(second["jobId"])

    assert denied["state"] == "FAILED" and "executionStartedAt" not in denied and denied["completedAt"]
    assert denied["error"]["code"] == "AI_CREDIT_LIMIT_EXCEEDED"
    assert denied["error"]["reason"] == "The organization is over its AI credit limit (1 AI jobs)"
    assert payload["event"] == "job.denied" and payload["status"] == "FAILED"
    assert payload["reason"] == denied["error"]["reason"] and payload["metadata"] == {"ticket": 7}
    assert payload["event_id"].startswith(f"evt_{second['jobId'].split('-')[0]}_DENIED_")


async def test_a_credit_limit_per_user_denies_only_the_user_over_it() -> None:
    async with sandbox_api(SandboxConfig(job_step_seconds=0.01)) as (sandbox, api):
        sandbox.set_ai_credit_limit(1, per="user")
        assert (await finished(api, (await create(api, prompt="total revenue"))["jobId"]))["state"] == "COMPLETE"
        alice_again = await finished(api, (await create(api, prompt="total revenue"))["jobId"])
        bob = await finished(api, (await create(api, BOB, prompt="total revenue"))["jobId"])
        sandbox.set_ai_credit_limit(None)
        alice_lifted = await finished(api, (await create(api, prompt="total revenue"))["jobId"])

    assert alice_again["error"]["reason"] == "The user is over its AI credit limit (1 AI jobs)"
    assert bob["state"] == "COMPLETE" and alice_lifted["state"] == "COMPLETE"


# --- cancelled jobs send no webhook --------------------------------------------------------------------------


@pytest.mark.parametrize("webhook_on_cancel", [False, True])
async def test_a_cancelled_job_sends_no_webhook_unless_the_sandbox_only_knob_asks(
    hooks: Hooks, webhook_on_cancel: bool
) -> None:
    config = SandboxConfig(job_step_seconds=0.05, webhook_on_cancel=webhook_on_cancel)
    hook = {"webhookUrl": hooks.url, "webhookSigningSecret": "s3cret"}
    async with sandbox_api(config) as (_, api):
        cancelled = await create(api, prompt="total revenue", **hook)
        assert (await api.post(f"/api/v1/ai/jobs/{cancelled['jobId']}/cancel")).json()["state"] == "CANCELLED"
        # A job after it, to the same receiver: once its webhook is in, a cancelled one would have been too.
        later = await create(api, prompt="total revenue", **hook)
        assert (await hooks.wait_for(later["jobId"]))["event"] == "job.complete"

    sent = [p for p in hooks.payloads if p["jobId"] == cancelled["jobId"]]
    if webhook_on_cancel:
        assert [(p["status"], p["event"]) for p in sent] == [("CANCELLED", "job.cancelled")]
    else:
        assert sent == []


# --- attachments, the failure action, branchId, webhook secret ------------------------------------------------


async def test_attachments_are_accepted_and_each_unread_one_is_a_failure_action_without_timestamp(
    api: httpx2.AsyncClient,
) -> None:
    attachment = {"data": PNG, "mimeType": "image/png", "name": "chart.png"}
    job = await create(api, prompt="total revenue", attachments=[attachment])
    assert (await finished(api, job["jobId"]))["state"] == "COMPLETE"
    result = (await api.get(f"/api/v1/ai/jobs/{job['jobId']}/result")).json()

    assert [a["type"] for a in result["actions"]] == ["generate_query", "failure", "summarize"]
    failure = result["actions"][1]
    assert "timestamp" not in failure and "'chart.png' (image/png)" in failure["message"]
    assert PNG not in json.dumps(result)


@pytest.mark.parametrize(
    ("attachments", "detail"),
    [
        ([{"data": "not base64!", "mimeType": "image/png"}], "attachments.0.data: must be base64"),
        ([{"data": PNG, "mimeType": "image/gif"}], "attachments.0.mimeType: Input should be 'image/png'"),
        ([{"mimeType": "image/png"}], "attachments.0.data: Required"),
        ([{"data": PNG, "mimeType": "image/png"}] * 6, "attachments: at most 5 attachments, got 6"),
        (
            [{"data": base64.b64encode(b"\0" * (3 * 1024 * 1024 + 1)).decode(), "mimeType": "image/jpeg"}],
            "attachments.0: an image may be at most 3145728 bytes, got 3145729",
        ),
    ],
)
async def test_attachments_of_the_wrong_shape_or_size_get_a_400_naming_what_is_wrong(
    api: httpx2.AsyncClient, attachments: list[dict[str, Any]], detail: str
) -> None:
    answer = await api.post(
        "/api/v1/ai/jobs",
        params={"userId": ALICE},
        json={"modelId": ECOMMERCE, "prompt": "x", "attachments": attachments},
    )
    assert answer.status_code == 400
    assert detail in answer.json()["detail"]


async def test_a_branch_of_the_model_is_accepted_and_echoed_and_any_other_is_404(api: httpx2.AsyncClient) -> None:
    branch = demo_branch_id(ECOMMERCE)
    job = await create(api, prompt="total revenue", branchId=branch)
    status = await finished(api, job["jobId"])
    other = await api.post(
        "/api/v1/ai/jobs",
        params={"userId": ALICE},
        json={"modelId": ECOMMERCE, "prompt": "x", "branchId": demo_branch_id("another-model")},
    )
    assert status["branchId"] == branch and status["state"] == "COMPLETE"
    assert other.status_code == 404 and other.json()["detail"].startswith("Branch ")


async def test_a_webhook_url_without_a_signing_secret_is_a_clear_400(api: httpx2.AsyncClient) -> None:
    answer = await api.post(
        "/api/v1/ai/jobs",
        params={"userId": ALICE},
        json={"modelId": ECOMMERCE, "prompt": "x", "webhookUrl": "https://example.com/hook"},
    )
    assert answer.json() == {
        "detail": "Bad Request: webhookSigningSecret is required when webhookUrl is set",
        "status": 400,
    }


# --- the conversations API -----------------------------------------------------------------------------------


async def test_conversations_list_most_recent_first_page_by_cursor_and_show_their_history() -> None:
    config = SandboxConfig(job_step_seconds=0.01)
    async with sandbox_api(config) as (sandbox, api):
        ids = []
        for prompt in ("total revenue", "revenue by region", "orders by month"):
            job = await create(api, prompt=prompt)
            await finished(api, job["jobId"])
            ids.append(job["conversationId"])
        follow = await create(api, prompt="and revenue by month?", conversationId=ids[0])
        await finished(api, follow["jobId"])
        bob = await create(api, BOB, prompt="total revenue")
        await finished(api, bob["jobId"])

        first = (await api.get("/api/v1/ai/conversations", params={"pageSize": 2, "userId": ALICE})).json()
        rest = await api.get(
            "/api/v1/ai/conversations",
            params={"pageSize": 2, "userId": ALICE, "cursor": first["pageInfo"]["nextCursor"]},
        )
        everyone = (await api.get("/api/v1/ai/conversations")).json()
        history = (await api.get(f"/api/v1/ai/conversations/{ids[0]}")).json()
        bad_cursor = await api.get("/api/v1/ai/conversations", params={"cursor": "nope"})

        headers = {"Authorization": f"Bearer {config.personal_token}"}
        async with httpx2.AsyncClient(base_url=sandbox.url or "", headers=headers) as pat:
            own = await create(pat, None, prompt="total revenue")
            await finished(api, own["jobId"])
            mine = (await pat.get("/api/v1/ai/conversations")).json()
            theirs = await pat.get(f"/api/v1/ai/conversations/{ids[0]}")
            for_alice = await pat.get("/api/v1/ai/conversations", params={"userId": ALICE})

    assert [c["id"] for c in first["data"]] == [ids[0], ids[2]] and first["pageInfo"]["hasNextPage"]
    assert [c["id"] for c in rest.json()["data"]] == [ids[1]] and not rest.json()["pageInfo"]["hasNextPage"]
    top = first["data"][0]
    assert set(top) == {"id", "name", "lastUserPrompt", "updatedAt", "createdAt"}
    assert top["name"] == "total revenue" and top["lastUserPrompt"] == "and revenue by month?"
    assert top["updatedAt"] > top["createdAt"]
    assert {c["id"] for c in everyone["data"]} == {*ids, bob["conversationId"]}  # the org key reads them all

    assert history["userId"] == ALICE and history["id"] == ids[0]
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user", "assistant"]
    assert history["messages"][2]["content"] == "and revenue by month?"
    assistant = history["messages"][3]
    assert assistant["jobId"] == follow["jobId"] and assistant["omniChatUrl"] == follow["omniChatUrl"]
    assert assistant["content"].startswith("**") and assistant["timestamp"]
    assert bad_cursor.status_code == 400

    assert [c["id"] for c in mine["data"]] == [own["conversationId"]]  # a personal token: only its own user's
    assert theirs.status_code == 404
    assert for_alice.status_code == 403


# --- kept across restarts --------------------------------------------------------------------------------------


async def test_a_restarted_sandbox_on_the_same_data_dir_knows_its_conversations_and_jobs(tmp_path: Path) -> None:
    config = SandboxConfig(job_step_seconds=0.01, data_dir=tmp_path / "sandbox")
    async with sandbox_api(config) as (_, api):
        job = await create(api, prompt="revenue by region")
        before = await finished(api, job["jobId"])
        result = (await api.get(f"/api/v1/ai/jobs/{job['jobId']}/result")).json()
    assert (tmp_path / "sandbox" / "sandbox.db").stat().st_mode & 0o777 == 0o600

    async with sandbox_api(config) as (_, api):
        again = (await api.get(f"/api/v1/ai/jobs/{job['jobId']}")).json()
        same_result = (await api.get(f"/api/v1/ai/jobs/{job['jobId']}/result")).json()
        follow = await create(api, prompt="and by month?", conversationId=job["conversationId"])
        assert (await finished(api, follow["jobId"]))["state"] == "COMPLETE"
        listed = (await api.get("/api/v1/ai/conversations")).json()["data"]

    assert again == before and same_result == result
    assert [c["id"] for c in listed] == [job["conversationId"]]

    async with sandbox_api(SandboxConfig(data_dir=tmp_path / "fresh")) as (_, api):
        forgotten = await api.post(
            "/api/v1/ai/jobs",
            params={"userId": ALICE},
            json={"modelId": ECOMMERCE, "prompt": "x", "conversationId": job["conversationId"]},
        )
    assert forgotten.json() == {"detail": f"Conversation {job['conversationId']} not found", "status": 404}


async def test_a_job_in_flight_when_the_sandbox_stopped_comes_back_failed(tmp_path: Path) -> None:
    slow = SandboxConfig(job_step_seconds=30, data_dir=tmp_path)
    async with sandbox_api(slow) as (_, api):
        job = await create(api, prompt="total revenue")
        assert (await api.get(f"/api/v1/ai/jobs/{job['jobId']}")).json()["state"] == "QUEUED"

    async with sandbox_api(SandboxConfig(data_dir=tmp_path)) as (_, api):
        status = (await api.get(f"/api/v1/ai/jobs/{job['jobId']}")).json()
        follow = await create(api, prompt="total revenue", conversationId=job["conversationId"])

    assert status["state"] == "FAILED" and status["error"]["code"] == "SANDBOX_RESTARTED"
    assert follow["conversationId"] == job["conversationId"]  # the conversation is free again


async def test_a_sandbox_without_a_data_dir_keeps_nothing_and_the_forget_knob_empties_one(tmp_path: Path) -> None:
    async with sandbox_api(SandboxConfig(job_step_seconds=0.01)) as (_, api):
        job = await create(api, prompt="total revenue")
        await finished(api, job["jobId"])
    async with sandbox_api(SandboxConfig(job_step_seconds=0.01)) as (_, api):
        assert (await api.get(f"/api/v1/ai/jobs/{job['jobId']}")).status_code == 404

    config = SandboxConfig(job_step_seconds=0.01, data_dir=tmp_path)
    async with sandbox_api(config) as (sandbox, api):
        job = await create(api, prompt="total revenue")
        await finished(api, job["jobId"])
        assert sandbox.forget_conversations() == 1
        assert (await api.get(f"/api/v1/ai/conversations/{job['conversationId']}")).status_code == 404
    async with sandbox_api(config) as (_, api):
        assert (await api.get("/api/v1/ai/conversations")).json()["data"] == []
