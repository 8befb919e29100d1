"""Input no client should send still gets a 4xx that says what is wrong, never a 5xx.

Bodies nested far deeper than any real one (which `json.loads` answers with a RecursionError, or which parse
and then fail validation once per level), and event numbers past any integer the service would parse. The
service runs on loopback (`running_service`) with the sandbox and the scripted fake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_bridge.sandbox import embed_user_id
from omni_bridge.testing import text_reply
from tests.conftest import Served
from tests.server.service_helpers import data_of, running_service, wait_for_response

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
ALICE = embed_user_id("alice")


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


JOB_BODIES = {
    "100k open brackets": (b"[" * 100_000, "Bad Request: Invalid JSON: nested too deeply"),
    "objects 50k deep": (nested(50_000), "Bad Request: Invalid JSON: nested too deeply"),
    "webhookMetadata 900 deep": (
        b'{"modelId":"' + ECOMMERCE.encode() + b'","prompt":"Revenue?","webhookMetadata":' + nested(900) + b"}",
        "Bad Request: Invalid JSON: nested too deeply",
    ),
}


@pytest.mark.parametrize("case", list(JOB_BODIES))
async def test_a_job_body_nested_too_deep_is_a_400_in_omnis_words(served: Served, tmp_path: Path, case: str) -> None:
    body, detail = JOB_BODIES[case]
    async with running_service(served, tmp_path, text_reply("West: 1")) as svc, svc.client() as client:
        answer = await client.post(
            "/api/v1/ai/jobs", params={"userId": ALICE}, content=body, headers={"Content-Type": "application/json"}
        )
        threads = data_of(await client.get("/v1/threads"))

    assert (answer.status_code, answer.json()) == (400, {"detail": detail, "status": 400})
    assert threads == []


@pytest.mark.parametrize("value", ["9" * 10_000, str(2**62 + 1), "-1", "abc", "1.5", "0x10"])
async def test_an_event_number_that_is_no_event_number_is_a_400(served: Served, tmp_path: Path, value: str) -> None:
    async with running_service(served, tmp_path, text_reply("West: 1")) as svc, svc.client() as client:
        response_id = data_of(await client.post("/v1/threads", json={"message": {"text": "Revenue?"}}))["response_id"]
        await wait_for_response(client, response_id)
        path = f"/v1/responses/{response_id}/events"
        by_header = await client.get(path, headers={"Last-Event-ID": value})
        by_query = await client.get(path, params={"after": value})

    for answer, name in ((by_header, "Last-Event-ID"), (by_query, "after")):
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request"
        assert error["message"] == f"`{name}` must be an event number (a whole number from 0 to {2**62})"


@pytest.mark.parametrize("value", ["9" * 10_000, "101", "0", "-3", "ten"])
async def test_a_thread_list_limit_out_of_range_is_a_400(served: Served, tmp_path: Path, value: str) -> None:
    async with running_service(served, tmp_path, text_reply("West: 1")) as svc, svc.client() as client:
        answer = await client.get("/v1/threads", params={"limit": value})

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"] == "`limit` must be a whole number from 1 to 100"
