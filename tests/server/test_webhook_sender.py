"""Webhook URLs are checked against the allow-list, and events arrive signed exactly like Omni's."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pydantic import JsonValue, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.server._webhook_sender import WebhookSender, WebhookUrlError, WebhookUrlPolicy

SECRET = "whsec-bridge-DO-NOT-LEAK-7d41"
PAYLOAD: dict[str, JsonValue] = {
    "event_id": "evt_550e8400_COMPLETE_1790000000",
    "jobId": "550e8400-e29b-41d4-a716-446655440000",
    "status": "COMPLETE",
    "result_summary": "West: 1,234",
    "metadata": {"ticket": 42},
    "completed_at": "2026-09-21T10:30:00.000Z",
}
LOOPBACK_ONLY = WebhookUrlPolicy(allow=("127.0.0.1",))


@dataclass
class Receiver:
    """A tiny webhook receiver: records what arrives, answers with the scripted statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 307:
                return RedirectResponse(self.url + "/elsewhere", status_code=307)
            return JSONResponse({"ok": status < 300}, status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/elsewhere", hook, methods=["POST"])])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    async with serve_asgi(recv.app()) as url:
        recv.url = url
        yield recv


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Omni's documented scheme, computed here without the code under test."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# --- the URL policy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://100.64.0.1/hook", "non-public"),
        ("http://[fe80::1]/hook", "link-local"),
    ],
)
async def test_urls_to_addresses_that_are_not_public_are_refused(url: str, kind: str) -> None:
    with pytest.raises(WebhookUrlError) as refused:
        await WebhookUrlPolicy().check(url)
    assert f"{kind} address" in str(refused.value)
    assert "BRIDGE_WEBHOOK_ALLOW" in str(refused.value)


async def test_a_host_name_is_refused_when_any_of_its_addresses_is_not_public() -> None:
    answers = {"mixed.example": ["93.184.216.34", "10.0.0.7"], "public.example": ["93.184.216.34", "2606:4700::1"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    policy = WebhookUrlPolicy(resolver=resolve)
    with pytest.raises(WebhookUrlError, match=r"'mixed.example' resolves to 10.0.0.7, a private address"):
        await policy.check("https://mixed.example/hook")
    await policy.check("https://public.example/hook")


async def test_localhost_is_resolved_and_refused() -> None:
    with pytest.raises(WebhookUrlError, match="loopback address"):
        await WebhookUrlPolicy().check("http://localhost:8080/hook")


async def test_names_that_do_not_resolve_and_urls_that_are_not_http_are_refused() -> None:
    async def no_such_host(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    policy = WebhookUrlPolicy(resolver=no_such_host)
    with pytest.raises(WebhookUrlError, match="does not resolve"):
        await policy.check("https://nowhere.invalid/hook")
    for url, why in [
        ("ftp://93.184.216.34/hook", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http:///hook", "no host"),
        ("http://93.184.216.34:99999/hook", "not a valid URL"),
    ]:
        with pytest.raises(WebhookUrlError, match=why):
            await policy.check(url)


async def test_the_allow_list_admits_named_hosts_addresses_and_networks_only() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"hooks.internal": ["10.9.9.9"], "other.internal": ["10.9.9.9"]}[host]

    policy = WebhookUrlPolicy(allow=("127.0.0.1", "10.8.0.0/16", "hooks.internal", "::1"), resolver=resolve)
    for url in ["http://127.0.0.1:9/hook", "http://10.8.4.2/hook", "https://hooks.internal/hook", "http://[::1]/"]:
        await policy.check(url)
    for url in ["http://127.0.0.2/hook", "http://10.9.0.1/hook", "https://other.internal/hook"]:
        with pytest.raises(WebhookUrlError):
            await policy.check(url)


def test_the_allow_list_comes_from_the_settings_and_a_bad_entry_names_the_variable() -> None:
    policy = WebhookUrlPolicy.from_settings(load_settings(None, bridge_webhook_allow="127.0.0.1, 10.0.0.0/8"))
    assert repr(policy) == "<WebhookUrlPolicy allowed_hosts=0 allowed_networks=2>"
    with pytest.raises(ConfigError, match="BRIDGE_WEBHOOK_ALLOW: 'not a host!'"):
        WebhookUrlPolicy(allow=("not a host!",))


# --- delivery ---------------------------------------------------------------------------------------------------


async def test_an_event_arrives_signed_like_omnis(receiver: Receiver) -> None:
    sender = WebhookSender(LOOPBACK_ONLY)
    delivery = await sender.send(receiver.url + "/hook", SecretStr(SECRET), PAYLOAD, attempts=3)

    assert delivery.delivered and delivery.attempts == 1 and delivery.status_code == 200
    [(headers, body)] = receiver.received
    assert json.loads(body) == PAYLOAD
    assert headers["content-type"] == "application/json"
    timestamp = headers["x-omni-signature-timestamp"]
    assert timestamp.isdigit()
    assert headers["x-omni-signature"] == independent_signature(SECRET, timestamp, body)
    assert headers["x-omni-signature"] != independent_signature("another-secret", timestamp, body)


async def test_a_terminal_event_is_retried_after_a_server_error_with_the_same_event_id(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    delivery = await WebhookSender(LOOPBACK_ONLY, backoff=0).send(
        receiver.url + "/hook", SecretStr(SECRET), PAYLOAD, attempts=3
    )

    assert delivery.delivered and delivery.attempts == 3
    bodies = [json.loads(body) for _, body in receiver.received]
    assert [b["event_id"] for b in bodies] == [PAYLOAD["event_id"]] * 3
    for headers, body in receiver.received:
        assert headers["x-omni-signature"] == independent_signature(SECRET, headers["x-omni-signature-timestamp"], body)


async def test_a_client_error_is_not_retried_and_one_attempt_means_one(receiver: Receiver) -> None:
    sender = WebhookSender(LOOPBACK_ONLY, backoff=0)
    receiver.statuses = [400]
    refused = await sender.send(receiver.url + "/hook", SecretStr(SECRET), PAYLOAD, attempts=3)
    receiver.statuses = [500]
    progress = await sender.send(receiver.url + "/hook", SecretStr(SECRET), PAYLOAD, attempts=1)

    assert (refused.delivered, refused.attempts, refused.error) == (False, 1, "HTTP 400")
    assert (progress.delivered, progress.attempts, progress.status_code) == (False, 1, 500)
    assert len(receiver.received) == 2


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.statuses = [307]
    delivery = await WebhookSender(LOOPBACK_ONLY).send(receiver.url + "/hook", SecretStr(SECRET), PAYLOAD)

    assert not delivery.delivered and delivery.status_code == 307
    assert len(receiver.received) == 1  # /elsewhere was never asked


async def test_the_url_is_checked_again_at_delivery(receiver: Receiver) -> None:
    delivery = await WebhookSender(WebhookUrlPolicy()).send(receiver.url + "/hook", SecretStr(SECRET), PAYLOAD)

    assert not delivery.delivered and delivery.attempts == 0
    assert delivery.error is not None and "loopback address" in delivery.error
    assert receiver.received == []


async def test_an_unreachable_receiver_is_retried_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="omni_bridge")
    url = "http://127.0.0.1:9/hook?token=query-token-DO-NOT-LOG"  # port 9 (discard) refuses connections
    sender = WebhookSender(LOOPBACK_ONLY, backoff=0, timeout=2)
    delivery = await sender.send(url, SecretStr(SECRET), PAYLOAD, attempts=2)

    assert (delivery.delivered, delivery.attempts, delivery.error) == (False, 2, "ConnectError")
    assert "not delivered after 2 attempt(s)" in caplog.text
    assert SECRET not in caplog.text and "query-token" not in caplog.text
    assert SECRET not in repr(sender) and SECRET not in repr(delivery)
