"""Webhook signatures: what the sandbox sends (signed like Omni) passes; altered, old or replayed requests do not."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.exceptions import WebhookVerificationError
from omni_bridge.sandbox import embed_user_id, sign_webhook
from omni_bridge.tools import ReplayGuard, sign_webhook_payload, verify_webhook
from tests.conftest import Served

SECRET = "whsec-sandbox-DO-NOT-LEAK-31c9"
NOW = 1_790_000_000
ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
PAYLOAD = {
    "event_id": "evt_550e8400_COMPLETE_1790000000",
    "jobId": "550e8400-e29b-41d4-a716-446655440000",
    "status": "COMPLETE",
    "result_summary": "**Sales**: 1 row",
    "metadata": {"ticket": 42},
    "completed_at": "2026-09-21T10:30:00Z",
}


def signed(body: bytes, *, timestamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    """Headers exactly as the sandbox (and Omni) sends them."""
    stamp = str(timestamp)
    return {"X-Omni-Signature-Timestamp": stamp, "X-Omni-Signature": sign_webhook(secret, stamp, body)}


def refused(
    headers: dict[str, str],
    body: bytes,
    *,
    now: float = NOW,
    tolerance_seconds: float = 300,
    replay_guard: ReplayGuard | None = None,
) -> str:
    """The refusal's message (and proof that it never carries the secret)."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(SECRET, headers, body, now=now, tolerance_seconds=tolerance_seconds, replay_guard=replay_guard)
    message = str(caught.value)
    assert SECRET not in message and SECRET not in repr(caught.value)
    return message


BODY = json.dumps(PAYLOAD, separators=(",", ":")).encode()


def test_a_body_signed_like_omni_is_accepted_and_parsed() -> None:
    assert verify_webhook(SECRET, signed(BODY), BODY, now=NOW) == PAYLOAD


def test_header_names_are_case_insensitive_and_any_mapping_works() -> None:
    lowered = {name.lower(): value for name, value in signed(BODY).items()}
    assert verify_webhook(SECRET, lowered, BODY, now=NOW) == PAYLOAD
    assert verify_webhook(SECRET, httpx2.Headers(signed(BODY)), BODY, now=NOW) == PAYLOAD


def test_a_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b"COMPLETE", b"FAILED")
    assert "does not match" in refused(signed(BODY), tampered)


def test_a_wrong_secret_is_refused() -> None:
    assert "does not match" in refused(signed(BODY, secret="someone-elses-secret"), BODY)


def test_a_timestamp_outside_the_tolerance_is_refused_either_way() -> None:
    assert "301s old" in refused(signed(BODY, timestamp=NOW - 301), BODY)
    assert "in the future" in refused(signed(BODY, timestamp=NOW + 301), BODY)
    assert verify_webhook(SECRET, signed(BODY, timestamp=NOW - 299), BODY, now=NOW) == PAYLOAD
    assert "61s old" in refused(signed(BODY, timestamp=NOW - 61), BODY, tolerance_seconds=60)


def test_the_timestamp_is_part_of_the_signature() -> None:
    headers = signed(BODY, timestamp=NOW - 1000)
    headers["X-Omni-Signature-Timestamp"] = str(NOW)  # a fresh timestamp on an old signature
    assert "does not match" in refused(headers, BODY)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "not signed"),
        ({"X-Omni-Signature": "sha256=00"}, "not signed"),
        ({"X-Omni-Signature-Timestamp": str(NOW)}, "not signed"),
        ({"X-Omni-Signature-Timestamp": "yesterday", "X-Omni-Signature": "sha256=00"}, "unix seconds"),
        ({"X-Omni-Signature-Timestamp": "-5", "X-Omni-Signature": "sha256=00"}, "unix seconds"),
        ({"X-Omni-Signature-Timestamp": str(NOW), "X-Omni-Signature": "md5=00"}, "sha256="),
        ({"X-Omni-Signature-Timestamp": str(NOW), "X-Omni-Signature": "sha256=zz"}, "does not match"),
    ],
)
def test_missing_or_malformed_headers_are_refused(headers: dict[str, str], expected: str) -> None:
    assert expected in refused(headers, BODY)


def test_a_signed_body_that_is_not_a_json_object_is_refused() -> None:
    assert "not JSON" in refused(signed(b"not json"), b"not json")
    assert "not a JSON object" in refused(signed(b"[1, 2]"), b"[1, 2]")


def test_an_empty_secret_never_verifies_anything() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook signing secret"):
        verify_webhook("", signed(BODY, secret=""), BODY, now=NOW)


def test_a_base64_digest_is_accepted_too() -> None:
    # Omni does not say how the digest is encoded; hex is likely, base64 is the other common choice.
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).digest()
    headers = {
        "X-Omni-Signature-Timestamp": str(NOW),
        "X-Omni-Signature": "sha256=" + base64.b64encode(digest).decode(),
    }
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == PAYLOAD


def test_an_exact_replay_inside_the_window_is_refused_by_a_replay_guard() -> None:
    guard = ReplayGuard()
    headers = signed(BODY)
    assert verify_webhook(SECRET, headers, BODY, now=NOW, replay_guard=guard) == PAYLOAD
    assert "replayed" in refused(headers, BODY, replay_guard=guard)
    # Omni's own retry of the event is signed anew (a new timestamp): it is not a replay of the request.
    assert verify_webhook(SECRET, signed(BODY, timestamp=NOW + 5), BODY, now=NOW + 5, replay_guard=guard) == PAYLOAD
    # A request refused for another reason (here: checked too late) is not remembered as seen.
    other = BODY.replace(b"42", b"43")
    assert "old" in refused(signed(other), other, now=NOW + 400, replay_guard=guard)
    assert verify_webhook(SECRET, signed(other), other, now=NOW, replay_guard=guard)["metadata"] == {"ticket": 43}


def test_a_replay_guard_forgets_what_left_the_window_and_stays_bounded() -> None:
    guard = ReplayGuard(max_entries=2)
    for i in range(3):
        body = json.dumps({**PAYLOAD, "n": i}).encode()
        verify_webhook(SECRET, signed(body), body, now=NOW, replay_guard=guard)
    assert len(guard) == 2 and repr(guard) == "<ReplayGuard remembered=2 max_entries=2>"
    later = json.dumps({**PAYLOAD, "n": "later"}).encode()
    verify_webhook(SECRET, signed(later, timestamp=NOW + 301), later, now=NOW + 301, replay_guard=guard)
    assert len(guard) == 1  # the first three fell out of the 300 s window


def test_sign_webhook_payload_signs_like_omni_and_verifies() -> None:
    headers = sign_webhook_payload(SECRET, BODY, timestamp=NOW)
    assert headers == signed(BODY)
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == PAYLOAD
    fresh = sign_webhook_payload(SECRET, BODY)
    assert abs(int(fresh["X-Omni-Signature-Timestamp"]) - time.time()) < 300
    assert verify_webhook(SECRET, fresh, BODY) == PAYLOAD
    with pytest.raises(ValueError, match="secret is required"):
        sign_webhook_payload("", BODY)


async def test_a_webhook_the_sandbox_delivers_verifies_once_and_its_replay_does_not(served: Served) -> None:
    secret = "whsec-" + uuid.uuid4().hex
    delivered: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def hook(request: Request) -> Response:
        await delivered.put((dict(request.headers), await request.body()))
        return Response(status_code=204)

    async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as hook_url:
        async with httpx2.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {served.org_key}"}) as h:
            created = await h.post(
                "/api/v1/ai/jobs",
                params={"userId": embed_user_id("bob")},
                json={
                    "modelId": ECOMMERCE,
                    "prompt": "revenue by region",
                    "webhookUrl": f"{hook_url}/hook",
                    "webhookSigningSecret": secret,
                    "webhookMetadata": {"thread": "t-1"},
                },
            )
            async with asyncio.timeout(10):
                headers, body = await delivered.get()
    guard = ReplayGuard()
    event = verify_webhook(secret, headers, body, replay_guard=guard)
    assert event["jobId"] == created.json()["jobId"] and event["status"] == "COMPLETE"
    assert event["metadata"] == {"thread": "t-1"} and event["event_id"].startswith("evt_")
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify_webhook(secret, headers, body, replay_guard=guard)
