"""The sandbox's REST API over loopback HTTP with `httpx2`: SCIM, upsert, AI jobs, webhooks, auth, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.sandbox import embed_user_id
from tests.conftest import Served

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def api(served: Served) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=served.url, headers=_auth(served.org_key), timeout=10) as http:
        yield http


async def _wait_terminal(api: httpx2.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1]["state"] not in TERMINAL:
            response = await api.get(f"/api/v1/ai/jobs/{job_id}")
            assert response.status_code == 200, response.text
            seen.append(response.json())
            await asyncio.sleep(0.005)
    return seen


# --- SCIM and upsert -----------------------------------------------------------------------------------


async def test_scim_filter_on_external_id_finds_exactly_one_user(api: httpx2.AsyncClient) -> None:
    found = (await api.get("/api/scim/v2/embed/users", params={"filter": 'embedExternalId eq "bob"'})).json()
    assert found["totalResults"] == 1 and found["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert found["Resources"][0]["id"] == embed_user_id("bob")
    assert found["Resources"][0]["embedExternalId"] == "bob"
    # External ids compare case-sensitively; attribute and operator names do not.
    upper = (await api.get("/api/scim/v2/embed/users", params={"filter": 'EMBEDEXTERNALID EQ "BOB"'})).json()
    assert upper["totalResults"] == 0


async def test_scim_contains_filter_and_user_name_filter(api: httpx2.AsyncClient) -> None:
    contains = (await api.get("/api/scim/v2/embed/users", params={"filter": 'embedExternalId co "a"'})).json()
    assert {r["embedExternalId"] for r in contains["Resources"]} >= {"alice", "carol", "dan", "nora"}
    user_name = contains["Resources"][0]["userName"]
    by_name = await api.get("/api/scim/v2/embed/users", params={"filter": f'userName eq "{user_name.upper()}"'})
    assert [r["userName"] for r in by_name.json()["Resources"]] == [user_name]


async def test_scim_paging_walks_every_user_once(api: httpx2.AsyncClient) -> None:
    everyone = (await api.get("/api/scim/v2/embed/users")).json()
    seen: list[str] = []
    start = 1
    while True:
        page = (await api.get("/api/scim/v2/embed/users", params={"count": 2, "startIndex": start})).json()
        assert page["itemsPerPage"] == len(page["Resources"]) <= 2
        assert page["startIndex"] == start and page["totalResults"] == everyone["totalResults"]
        if not page["Resources"]:
            break
        seen += [r["id"] for r in page["Resources"]]
        start += 2
    assert seen == [r["id"] for r in everyone["Resources"]]


async def test_upsert_then_lookup_returns_the_new_user_with_replaced_attributes(api: httpx2.AsyncClient) -> None:
    external_id = f"cust-{uuid.uuid4().hex[:8]}"
    body = {
        "externalId": external_id,
        "name": "New Customer",
        "groups": ["Finance"],
        "userAttributes": {"region": "South"},
        "contentPath": "/",
    }
    created = await api.post("/api/v1/embed/sso/generate-session", json=body)
    assert created.status_code == 200 and set(created.json()) == {"sessionId"}
    found = await api.get("/api/scim/v2/embed/users", params={"filter": f'embedExternalId eq "{external_id}"'})
    [resource] = found.json()["Resources"]
    assert resource["displayName"] == "New Customer" and resource["groups"][0]["display"] == "Finance"
    # Upsert again through the unstable path: same id, groups replaced.
    again = await api.post("/api/unstable/embed/sso/generate-session", json=body | {"groups": []})
    assert again.status_code == 200
    one = (await api.get(f"/api/scim/v2/embed/users/{resource['id']}")).json()
    assert one["id"] == resource["id"] and one["groups"] == []
    legacy = (await api.get("/api/v0/users/embed", params={"externalId": external_id})).json()
    assert [r["id"] for r in legacy["records"]] == [resource["id"]]


async def test_upserted_attributes_drive_row_level_security(served: Served, api: httpx2.AsyncClient) -> None:
    external_id = f"cust-{uuid.uuid4().hex[:8]}"
    await api.post(
        "/api/v1/embed/sso/generate-session",
        json={"externalId": external_id, "name": "Southerner", "userAttributes": {"region": "South"}},
    )
    created = await api.post(
        f"/api/v1/ai/jobs?userId={embed_user_id(external_id)}",
        json={"modelId": ECOMMERCE, "prompt": "revenue by region"},
    )
    assert created.status_code == 201
    await _wait_terminal(api, created.json()["jobId"])
    result = (await api.get(f"/api/v1/ai/jobs/{created.json()['jobId']}/result")).json()
    csv = result["actions"][0]["result"]["csvResult"]
    assert "South" in csv and "West" not in csv and "East" not in csv


# --- AI jobs -------------------------------------------------------------------------------------------


async def test_job_lifecycle_states_progress_and_result(api: httpx2.AsyncClient, alice_id: str) -> None:
    created = await api.post(
        f"/api/v1/ai/jobs?userId={alice_id}", json={"modelId": ECOMMERCE, "prompt": "top 5 products by revenue in 2025"}
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"jobId", "conversationId", "omniChatUrl"}
    assert body["omniChatUrl"].endswith(f"/chat/{body['conversationId']}")
    seen = await _wait_terminal(api, body["jobId"])
    states = [s["state"] for s in seen]
    assert states[-1] == "COMPLETE"
    assert states == sorted(states, key=["QUEUED", "EXECUTING", "DELIVERING", "COMPLETE"].index)
    assert any(s.get("progress") for s in seen if s["state"] == "EXECUTING")
    final = seen[-1]
    assert final["userId"] == alice_id and final["completedAt"] and final["resultSummary"]
    result = (await api.get(f"/api/v1/ai/jobs/{body['jobId']}/result")).json()
    action = result["actions"][0]
    assert action["type"] == "generate_query"
    assert set(action["result"]) >= {
        "queryName",
        "status",
        "hasResults",
        "totalRowCount",
        "csvResult",
        "csvResultWasTruncated",
        "query",
    }
    assert action["result"]["csvResult"].count("\n") == 6  # header + top 5


async def test_one_active_job_per_conversation_then_cancel(api: httpx2.AsyncClient, alice_id: str) -> None:
    first = (
        await api.post(f"/api/v1/ai/jobs?userId={alice_id}", json={"modelId": ECOMMERCE, "prompt": "revenue by month"})
    ).json()
    second = await api.post(
        f"/api/v1/ai/jobs?userId={alice_id}",
        json={"modelId": ECOMMERCE, "prompt": "orders by month", "conversationId": first["conversationId"]},
    )
    assert second.status_code == 409
    assert second.json() == {"detail": "An active job already exists for this conversation", "status": 409}
    cancelled = await api.post(f"/api/v1/ai/jobs/{first['jobId']}/cancel", params={"userId": alice_id})
    assert cancelled.status_code == 200
    seen = await _wait_terminal(api, first["jobId"])
    assert seen[-1]["state"] == "CANCELLED" and seen[-1]["cancelledBy"] == alice_id
    again = await api.post(f"/api/v1/ai/jobs/{first['jobId']}/cancel")
    assert again.json() == {"jobId": first["jobId"], "state": "CANCELLED"}  # idempotent
    assert (await api.get(f"/api/v1/ai/jobs/{first['jobId']}/result")).status_code == 404
    # The conversation is free again.
    third = await api.post(
        f"/api/v1/ai/jobs?userId={alice_id}",
        json={"modelId": ECOMMERCE, "prompt": "orders by month", "conversationId": first["conversationId"]},
    )
    assert third.status_code == 201


async def test_failed_job_carries_an_error(api: httpx2.AsyncClient) -> None:
    created = (
        await api.post(
            f"/api/v1/ai/jobs?userId={embed_user_id('nora')}",
            json={"modelId": ECOMMERCE, "prompt": "revenue by region"},
        )
    ).json()
    final = (await _wait_terminal(api, created["jobId"]))[-1]
    assert final["state"] == "FAILED" and "region" in final["error"]["message"]


async def test_jobs_of_one_user_are_invisible_to_another(served: Served, api: httpx2.AsyncClient) -> None:
    job = (
        await api.post(
            f"/api/v1/ai/jobs?userId={embed_user_id('alice')}", json={"modelId": ECOMMERCE, "prompt": "total revenue"}
        )
    ).json()
    as_bob = await api.get(f"/api/v1/ai/jobs/{job['jobId']}", params={"userId": embed_user_id("bob")})
    assert as_bob.status_code == 404
    async with httpx2.AsyncClient(base_url=served.url, headers=_auth(served.personal_token)) as pat:
        assert (await pat.get(f"/api/v1/ai/jobs/{job['jobId']}")).status_code == 404


async def test_terminal_webhook_is_signed_with_hmac_sha256(api: httpx2.AsyncClient, alice_id: str) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = asyncio.Event()

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        arrived.set()
        return Response(status_code=204)

    secret = "whsec-test-" + uuid.uuid4().hex
    async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as hook_url:
        created = (
            await api.post(
                f"/api/v1/ai/jobs?userId={alice_id}",
                json={
                    "modelId": ECOMMERCE,
                    "prompt": "revenue by region",
                    "webhookUrl": f"{hook_url}/hook",
                    "webhookSigningSecret": secret,
                    "webhookMetadata": {"ticket": 42},
                },
            )
        ).json()
        async with asyncio.timeout(10):
            await arrived.wait()
    headers, body = received[0]
    timestamp = headers["x-omni-signature-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-omni-signature"], f"sha256={expected}")
    payload = json.loads(body)
    assert payload["jobId"] == created["jobId"] and payload["status"] == "COMPLETE"
    assert payload["metadata"] == {"ticket": 42} and payload["event_id"].startswith("evt_")
    assert secret.encode() not in body


# --- auth --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Token x"}])
async def test_requests_without_a_valid_key_get_401(served: Served, headers: dict[str, str]) -> None:
    async with httpx2.AsyncClient(base_url=served.url) as http:
        response = await http.get("/api/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized: Missing or invalid API key", "status": 401}


async def test_personal_token_cannot_act_for_others_but_can_for_itself(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, headers=_auth(served.personal_token)) as pat:
        other = await pat.post(
            f"/api/v1/ai/jobs?userId={embed_user_id('alice')}", json={"modelId": ECOMMERCE, "prompt": "total revenue"}
        )
        own = await pat.post("/api/v1/ai/jobs", json={"modelId": ECOMMERCE, "prompt": "total revenue"})
        scim = await pat.get("/api/scim/v2/embed/users")
    assert other.status_code == 403 and "cannot act on behalf" in other.json()["detail"]
    assert own.status_code == 201
    assert scim.status_code == 403


async def test_rate_limit_answers_429_with_retry_after() -> None:
    from omni_bridge.sandbox import Sandbox

    sandbox = Sandbox()
    sandbox.set_faults(rate_limit_per_minute=3)
    async with sandbox.serve() as url, httpx2.AsyncClient(base_url=url, headers=_auth(sandbox.config.org_key)) as h:
        statuses = [(await h.get("/api/v1/models")).status_code for _ in range(5)]
        last = await h.get("/api/v1/models")
    assert statuses == [200, 200, 200, 429, 429]
    assert int(last.headers["retry-after"]) >= 1 and last.json()["status"] == 429


# --- malformed requests: always a 4xx with a message, never a 500 ----------------------------------------

BAD_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/ai/jobs", b"{not json"),
    ("POST", "/api/v1/ai/jobs", b"[1, 2]"),
    ("POST", "/api/v1/ai/jobs", {}),
    ("POST", "/api/v1/ai/jobs", {"modelId": "nope", "prompt": "x"}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": ""}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": 7}),
    ("POST", "/api/v1/ai/jobs", {"modelId": str(uuid.uuid4()), "prompt": "revenue"}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "topicName": "nope"}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "topicName": "x" * 300}),
    (
        "POST",
        "/api/v1/ai/jobs",
        {"modelId": ECOMMERCE, "prompt": "revenue", "webhookUrl": "not a url", "webhookSigningSecret": "s"},
    ),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "webhookUrl": "http://127.0.0.1:1/h"}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "progressWebhookEnabled": True}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "conversationId": "x"}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "conversationId": str(uuid.uuid4())}),
    ("POST", "/api/v1/ai/jobs", {"modelId": ECOMMERCE, "prompt": "revenue", "branchId": str(uuid.uuid4())}),
    ("POST", "/api/v1/ai/jobs?userId=not-a-uuid", {"modelId": ECOMMERCE, "prompt": "revenue"}),
    ("POST", f"/api/v1/ai/jobs?userId={uuid.uuid4()}", {"modelId": ECOMMERCE, "prompt": "revenue"}),
    ("GET", "/api/v1/ai/jobs/not-a-uuid", None),
    ("GET", f"/api/v1/ai/jobs/{uuid.uuid4()}", None),
    ("GET", f"/api/v1/ai/jobs/{uuid.uuid4()}/result", None),
    ("POST", f"/api/v1/ai/jobs/{uuid.uuid4()}/cancel", None),
    ("GET", "/api/v1/ai/jobs", None),
    ("DELETE", "/api/v1/ai/jobs", None),
    ("GET", "/api/scim/v2/embed/users?filter=garbage", None),
    ("GET", '/api/scim/v2/embed/users?filter=displayName eq "x"', None),
    ("GET", '/api/scim/v2/embed/users?filter=userName gt "x"', None),
    ("GET", "/api/scim/v2/embed/users?count=abc", None),
    ("GET", "/api/scim/v2/embed/users?startIndex=1.5", None),
    ("GET", f"/api/scim/v2/embed/users/{uuid.uuid4()}", None),
    ("GET", "/api/scim/v2/embed/users/not-a-uuid", None),
    ("POST", "/api/v1/embed/sso/generate-session", {}),
    ("POST", "/api/v1/embed/sso/generate-session", {"externalId": "x"}),
    ("POST", "/api/v1/embed/sso/generate-session", {"externalId": "", "name": "x"}),
    ("POST", "/api/v1/embed/sso/generate-session", {"externalId": "x", "name": "y", "groups": "Finance"}),
    ("POST", "/api/v1/embed/sso/generate-session", {"externalId": "x", "name": "y", "userAttributes": [1]}),
    ("POST", "/api/v1/embed/sso/generate-session", b"\xff\xfe"),
    ("GET", f"/api/v1/models/{uuid.uuid4()}/topic", None),
    ("GET", "/api/v1/models/not-a-uuid/topic", None),
    ("GET", f"/api/v1/models/{ECOMMERCE}/topic/nope", None),
    ("GET", "/api/v1/models?pageSize=x", None),
    ("POST", "/api/v1/ai/search-omni-docs", {"question": ""}),
    ("POST", "/api/v1/ai/search-omni-docs", {"question": "x" * 2001}),
    ("POST", "/api/v1/ai/pick-topic", {"modelId": ECOMMERCE}),
    ("POST", "/sandbox/faults", {"error_rate": 2}),
    ("POST", "/sandbox/faults", {"unknown_knob": 1}),
    ("POST", "/sandbox/faults", {"error_status": 404}),
    ("GET", "/api/v1/nothing-here", None),
    # Nested deeper than `json.loads` goes (a RecursionError, once a 500): the same parse serves every body.
    ("POST", "/api/v1/ai/jobs", b"[" * 100_000),
    ("POST", "/api/v1/ai/jobs", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("POST", "/api/unstable/embed/sso/generate-session", b"[" * 100_000),
    ("POST", "/api/v1/embed/sso/generate-session", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("POST", "/api/v1/ai/search-omni-docs", b"[" * 100_000),
    ("POST", "/api/v1/ai/pick-topic", b"[" * 100_000),
    ("POST", "/sandbox/faults", b"[" * 100_000),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_REQUESTS)
async def test_malformed_requests_get_a_4xx_with_a_message(
    api: httpx2.AsyncClient, method: str, path: str, body: Any
) -> None:
    if isinstance(body, bytes):
        response = await api.request(method, path, content=body, headers={"Content-Type": "application/json"})
    elif body is None:
        response = await api.request(method, path)
    else:
        response = await api.request(method, path, json=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if (path.startswith("/api/") and response.status_code not in (404, 405)) or response.headers.get(
        "content-type", ""
    ).startswith("application/json"):
        detail = response.json()
        assert detail["status"] == response.status_code and detail["detail"]
    else:
        assert response.text


async def test_models_and_topics(api: httpx2.AsyncClient) -> None:
    models = (await api.get("/api/v1/models")).json()
    assert len(models["records"]) >= 2 and models["pageInfo"]["totalRecords"] == len(models["records"])
    topics = (await api.get(f"/api/v1/models/{ECOMMERCE}/topic")).json()
    assert {"order_items", "customers", "product_margins"} <= {t["name"] for t in topics["topics"]}
    total_topics = 0
    for model in models["records"]:
        total_topics += len((await api.get(f"/api/v1/models/{model['id']}/topic")).json()["topics"])
    assert total_topics >= 3
