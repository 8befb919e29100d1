"""Who may ask what: service keys, the end user header, ownership (404, never 403), malformed requests, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.testing import text_reply
from tests.conftest import Served
from tests.server.service_helpers import (
    KEY,
    OTHER_TENANT_KEY,
    Running,
    data_of,
    faults,
    running_service,
    wait_for_response,
)


@pytest.fixture(autouse=True)
def no_faults(served: Served) -> None:
    faults(served)


async def answered_thread(svc: Running) -> dict[str, Any]:
    """Alice's thread with one finished exchange: its ids, and the assistant message's."""
    async with svc.client() as alice:
        ids: dict[str, Any] = data_of(await alice.post("/v1/threads", json={"message": {"text": "hi"}}))
        done = await wait_for_response(alice, ids["response_id"])
    return ids | {"message_id": done["message_id"]}


async def test_another_users_records_do_not_exist_for_them(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, responder=lambda _request: text_reply("Hello.")) as svc:
        ids = await answered_thread(svc)
        thread, response, message = ids["thread_id"], ids["response_id"], ids["message_id"]
        attempts = [
            ("GET", f"/v1/threads/{thread}", None),
            ("GET", f"/v1/threads/{thread}/messages", None),
            ("POST", f"/v1/threads/{thread}/messages", {"message": {"text": "mine now"}}),
            ("GET", f"/v1/threads/{thread}/response", None),
            ("GET", f"/v1/responses/{response}", None),
            ("POST", f"/v1/responses/{response}/cancel", None),
            ("GET", f"/v1/responses/{response}/events", None),
            ("GET", f"/v1/messages/{message}", None),
            ("GET", f"/v1/messages/{ids['user_message_id']}", None),
            ("POST", f"/v1/messages/{message}/feedback", {"rating": "down"}),
        ]
        # Bob of the same backend, and an "alice" of another backend (tenant), are other owners.
        async with svc.client("bob") as bob, svc.client("alice", key=OTHER_TENANT_KEY) as other_alice:
            for client in (bob, other_alice):
                for method, path, body in attempts:
                    answer = await client.request(method, path, json=body)
                    assert answer.status_code == 404, (method, path, answer.text)
                    assert answer.json()["error"]["type"] == "not_found"
                assert data_of(await client.get("/v1/threads")) == []

        async with svc.client() as alice:
            messages = data_of(await alice.get(f"/v1/threads/{thread}/messages"))
            assert len(messages) == 2 and messages[1]["feedback"] is None


UNAUTHENTICATED: list[tuple[dict[str, str], int, str]] = [
    ({"X-Bridge-User": "alice"}, 401, "Authorization: Bearer"),
    ({"Authorization": "Bearer not-a-key", "X-Bridge-User": "alice"}, 401, "not valid"),
    ({"Authorization": f"Bearer {KEY}x", "X-Bridge-User": "alice"}, 401, "not valid"),
    ({"Authorization": f"Basic {KEY}", "X-Bridge-User": "alice"}, 401, "Bearer"),
    ({}, 401, "Authorization"),
    ({"Authorization": f"Bearer {KEY}"}, 400, "X-Bridge-User"),
    ({"Authorization": f"Bearer {KEY}", "X-Bridge-User": ""}, 400, "X-Bridge-User"),
    ({"Authorization": f"Bearer {KEY}", "X-Bridge-User": "u" * 300}, 400, "longer than"),
]


async def test_a_request_needs_a_service_key_and_an_end_user(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path) as svc:
        async with httpx2.AsyncClient(base_url=svc.url) as client:
            for headers, status, says in UNAUTHENTICATED:
                for method, path in (("GET", "/v1/threads"), ("POST", "/v1/threads")):
                    answer = await client.request(method, path, headers=headers, json={"message": {"text": "hi"}})
                    assert answer.status_code == status, (headers, answer.text)
                    body = answer.json()
                    assert body["data"] is None and says in body["error"]["message"]
                    assert KEY not in answer.text
                    if status == 401:
                        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert svc.fake.requests == []  # nothing was asked


MALFORMED: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/v1/threads", {"content": b'{"message": '}, 400, "not valid JSON"),
    ("POST", "/v1/threads", {"content": b""}, 400, "JSON body is required"),
    ("POST", "/v1/threads", {"json": []}, 400, "not valid"),
    ("POST", "/v1/threads", {"json": {"message": {"text": 5}}}, 400, "message.text"),
    ("POST", "/v1/threads", {"json": {"message": {"text": "hi"}, "colour": "red"}}, 400, "colour"),
    ("POST", "/v1/threads", {"json": {"message": {"text": "x" * 20_001}}}, 400, "message.text"),
    ("POST", "/v1/threads", {"json": {"message": {"text": "   "}}}, 400, "blank"),
    ("POST", "/v1/threads", {"json": {"message": {}}}, 400, "message.text: Field required"),
    ("POST", "/v1/threads", {"json": {"message": {"text": "hi"}, "engine": "gpt"}}, 400, "engine"),
    ("POST", "/v1/threads", {"json": {"message": {"text": "hi"}, "user_profile": {"groups": "x"}}}, 400, "groups"),
    ("POST", "/v1/threads", {"content": b"hi", "headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
    ("POST", "/v1/threads", {"content": b" " * 1_000_001}, 413, "larger than"),
    ("GET", "/v1/threads/bad%20id", {}, 400, "not a valid thread id"),
    ("GET", "/v1/threads/" + "t" * 129 + "/messages", {}, 400, "not a valid thread id"),
    ("GET", "/v1/responses/not-a-uuid", {}, 400, "not a valid response id"),
    ("POST", "/v1/responses/12345/cancel", {}, 400, "not a valid response id"),
    ("GET", "/v1/messages/msg%2A", {}, 400, "not a valid message id"),
    ("GET", "/v1/threads?limit=0", {}, 400, "`limit`"),
    ("GET", "/v1/threads?limit=ten", {}, 400, "`limit`"),
    ("GET", "/v1/threads?before=yesterday", {}, 400, "`before`"),
    ("GET", "/v1/threads?before=2026-01-01T00:00:00", {}, 400, "time zone"),
    (
        "GET",
        "/v1/responses/0b7f8c3e-6f0a-4d7e-9c55-2f7d0f3c9a11/events",
        {"headers": {"Last-Event-ID": "x"}},
        400,
        "Last-Event-ID",
    ),
    ("GET", "/v1/responses/0b7f8c3e-6f0a-4d7e-9c55-2f7d0f3c9a11/events?after=-1", {}, 400, "`after`"),
    ("POST", "/v1/messages/msg_1/feedback", {"json": {"rating": "meh"}}, 400, "rating"),
    ("POST", "/v1/messages/msg_1/feedback", {"json": {"rating": "up", "comment": "c" * 4001}}, 400, "comment"),
    ("GET", "/v1/nothing-here", {}, 404, "no such path"),
    ("DELETE", "/v1/threads", {}, 405, "Method Not Allowed"),
]


async def test_every_malformed_request_gets_a_4xx_that_says_what_is_wrong(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path) as svc:
        async with svc.client() as alice:
            for method, path, options, status, says in MALFORMED:
                answer = await alice.request(method, path, **options)
                assert answer.status_code == status, (method, path, answer.text)
                error = answer.json()["error"]
                assert says in error["message"], (method, path, error)
        assert svc.fake.requests == []


async def test_claude_is_refused_up_front_where_there_is_no_anthropic_key(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, text_reply("Hello.")) as with_claude:
        earlier = await answered_thread(with_claude)
    # The same store, served by a worker without an Anthropic key.
    async with running_service(served, tmp_path, anthropic_api_key=None, bridge_engine="omni") as svc:
        async with svc.client() as alice:
            answer = await alice.post("/v1/threads", json={"message": {"text": "hi"}, "engine": "claude"})
            assert answer.status_code == 400
            assert answer.json()["error"]["type"] == "engine_unavailable"
            thread = earlier["thread_id"]
            follow_up = await alice.post(f"/v1/threads/{thread}/messages", json={"message": {"text": "?"}})
            assert follow_up.status_code == 400 and "ANTHROPIC_API_KEY" in follow_up.json()["error"]["message"]
            assert [t["id"] for t in data_of(await alice.get("/v1/threads"))] == [earlier["thread_id"]]
            assert len(data_of(await alice.get(f"/v1/threads/{earlier['thread_id']}/messages"))) == 2


async def test_the_openapi_description_covers_every_route_and_its_errors(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path) as svc:
        async with httpx2.AsyncClient(base_url=svc.url) as client:
            document = (await client.get("/openapi.json")).json()
            health = await client.get("/health")

    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    assert set(paths["/v1/threads"]) == {"get", "post"}
    for path in (
        "/v1/threads/{thread_id}",
        "/v1/threads/{thread_id}/messages",
        "/v1/threads/{thread_id}/response",
        "/v1/responses/{response_id}",
        "/v1/responses/{response_id}/cancel",
        "/v1/responses/{response_id}/events",
        "/v1/messages/{message_id}",
        "/v1/messages/{message_id}/feedback",
        "/api/v1/ai/jobs",
        "/health",
        "/",
    ):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "500" in operation["responses"], (method, path)
            if path.startswith("/v1/"):
                assert {"400", "401"} <= set(operation["responses"]), (method, path)
                assert any(p["name"] == "X-Bridge-User" and p["required"] for p in operation["parameters"])
    create = paths["/v1/threads"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateThread"
    }
    assert {"409", "404"} <= set(paths["/v1/threads/{thread_id}/messages"]["post"]["responses"])
    schemas = document["components"]["schemas"]
    assert schemas["CreateThread"]["additionalProperties"] is False
    assert schemas["MessageIn"]["properties"]["text"]["maxLength"] == 20_000
    assert health.status_code == 200 and health.json()["data"]["status"] == "ok"
