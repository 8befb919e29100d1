"""IPv6 addresses that carry a refused IPv4 address are refused as webhook destinations; public ones stay allowed.

Everything here runs in-process: literal addresses are only parsed, host names go to a fake resolver, and the
sender's transport is a recording fake that would answer (never connect) had the policy let a request through.
No packet is ever sent to any address below.
"""

from __future__ import annotations

import ipaddress

import httpx2
import pytest
from pydantic import JsonValue, SecretStr

from omni_bridge.server._webhook_addresses import refusal
from omni_bridge.server._webhook_sender import WebhookSender, WebhookUrlError, WebhookUrlPolicy

PAYLOAD: dict[str, JsonValue] = {"event_id": "evt_1", "jobId": "job-1", "status": "COMPLETE"}


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32): server IPv4 in bits 32-64, client IPv4 XOR 0xffffffff in the last 32 bits."""
    value = (0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= int(ipaddress.IPv4Address(client)) ^ 0xFFFF_FFFF
    return str(ipaddress.IPv6Address(value))


REFUSED = [
    # The examples: 6to4 of 127.0.0.1 and of the cloud metadata address.
    ("2002:7f00:1::", "a 6to4 address carrying 127.0.0.1, a loopback address"),
    ("2002:a9fe:a9fe::", "a 6to4 address carrying 169.254.169.254, a link-local address"),
    ("2002:A9FE:A9FE:0:0:0:0:1", "a 6to4 address carrying 169.254.169.254, a link-local address"),
    ("2002:a00:1::1", "a 6to4 address carrying 10.0.0.1, a private address"),
    ("2002:6440:1::", "a 6to4 address carrying 100.64.0.1, a non-public address"),
    # NAT64, RFC 6052's well-known prefix, written both ways, and the local-use prefix (layout unknown).
    ("64:ff9b::7f00:1", "a NAT64 address carrying 127.0.0.1, a loopback address"),
    ("64:ff9b::169.254.169.254", "a NAT64 address carrying 169.254.169.254, a link-local address"),
    ("64:ff9b::192.168.1.1", "a NAT64 address carrying 192.168.1.1, a private address"),
    ("64:ff9b::", "a NAT64 address carrying 0.0.0.0, an unspecified address"),
    ("64:ff9b:1::808:808", "a local-use NAT64 address"),
    # Teredo: a refused server or a refused (obfuscated) client; and Teredo at all, whatever it carries.
    (teredo("127.0.0.1", "8.8.8.8"), "a Teredo address carrying 127.0.0.1, a loopback address"),
    (teredo("65.54.227.120", "169.254.169.254"), "a Teredo address carrying 169.254.169.254, a link-local address"),
    (teredo("65.54.227.120", "10.1.2.3"), "a Teredo address carrying 10.1.2.3, a private address"),
    (teredo("65.54.227.120", "8.8.8.8"), "a Teredo address"),
    # IPv4-compatible (deprecated ::/96) and IPv4-translated (::ffff:0:0:0/96).
    ("::127.0.0.1", "an IPv4-compatible address carrying 127.0.0.1, a loopback address"),
    ("::a9fe:a9fe", "an IPv4-compatible address carrying 169.254.169.254, a link-local address"),
    ("::8.8.8.8", "an IPv4-compatible address"),
    ("::ffff:0:127.0.0.1", "an IPv4-translated address carrying 127.0.0.1, a loopback address"),
    ("::ffff:0:8.8.8.8", "an IPv4-translated address"),
    # IPv4-mapped, in both spellings.
    ("::ffff:127.0.0.1", "an IPv4-mapped address carrying 127.0.0.1, a loopback address"),
    ("::ffff:a9fe:a9fe", "an IPv4-mapped address carrying 169.254.169.254, a link-local address"),
    ("::ffff:10.0.0.1", "an IPv4-mapped address carrying 10.0.0.1, a private address"),
    # `::` and `::1` are in ::/96 but are their own cases.
    ("::", "an unspecified address"),
    ("::1", "a loopback address"),
]

ALLOWED = [
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2002:5db8:d822::",  # 6to4 of 93.184.216.34
    "64:ff9b::8.8.8.8",  # NAT64 of a public address: what DNS64 gives an IPv6-only host
    "::ffff:8.8.8.8",
    "::ffff:93.184.216.34",
    "2001:4860:4860::8888",  # plain public IPv6
    "2606:4700::1111",
    "8.8.8.8",
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_refusal_names_the_form_and_the_refused_ipv4_address_it_carries(address: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_and_forms_carrying_public_ones_are_not_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("address", "why"), REFUSED)
async def test_urls_with_these_literals_are_refused(address: str, why: str) -> None:
    with pytest.raises(WebhookUrlError) as refused:
        await WebhookUrlPolicy(resolver=no_resolving).check(f"https://[{address}]:8443/hook?token=t")
    assert f"is {why};" in str(refused.value)
    assert "BRIDGE_WEBHOOK_ALLOW" in str(refused.value)


@pytest.mark.parametrize(("address", "why"), REFUSED)
async def test_a_host_name_resolving_to_one_of_these_is_refused(address: str, why: str) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.example", 443)
        return ["93.184.216.34", address]

    with pytest.raises(WebhookUrlError) as refused:
        await WebhookUrlPolicy(resolver=resolve).check("https://hooks.example/hook")
    assert f"'hooks.example' resolves to {ipaddress.ip_address(address)}, {why};" in str(refused.value)


@pytest.mark.parametrize("address", ALLOWED)
async def test_urls_and_names_with_public_addresses_stay_allowed(address: str) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return [address]

    policy = WebhookUrlPolicy(resolver=resolve)
    literal = f"[{address}]" if ":" in address else address
    await policy.check(f"https://{literal}/hook")
    await policy.check("https://hooks.example/hook")


async def test_the_allow_list_can_admit_them_and_an_ipv4_entry_admits_its_mapped_form_only() -> None:
    policy = WebhookUrlPolicy(allow=("127.0.0.1", "2002:a9fe::/32", "64:ff9b::10.0.0.0/104"), resolver=no_resolving)
    for url in [
        "http://[::ffff:127.0.0.1]/hook",  # the same socket destination as 127.0.0.1
        "http://[2002:a9fe:a9fe::]/hook",
        "http://[64:ff9b::10.1.2.3]/hook",
    ]:
        await policy.check(url)
    for url in [
        "http://[2002:7f00:1::]/hook",  # a 6to4 site behind 127.0.0.1 is not 127.0.0.1
        "http://[64:ff9b::127.0.0.1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[64:ff9b::192.168.0.1]/hook",
    ]:
        with pytest.raises(WebhookUrlError):
            await policy.check(url)


async def no_resolving(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} was resolved, but literals need no resolution")


class RecordingTransport(httpx2.AsyncBaseTransport):
    """Answers 200 to whatever it is given, without any network; remembers each request's host."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.hosts.append(request.url.host)
        return httpx2.Response(200, json={"ok": True})


@pytest.mark.parametrize(
    "address", ["2002:7f00:1::", "2002:a9fe:a9fe::", "64:ff9b::a9fe:a9fe", teredo("65.54.227.120", "127.0.0.1")]
)
async def test_the_sender_refuses_before_any_request_whether_literal_or_resolved(address: str) -> None:
    resolved: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)
        return [address]

    transport = RecordingTransport()
    sender = WebhookSender(WebhookUrlPolicy(resolver=resolve), transport=transport, backoff=0)
    by_literal = await sender.send(f"https://[{address}]/hook", SecretStr("s"), PAYLOAD, attempts=3)
    by_name = await sender.send("https://rebinding.example/hook", SecretStr("s"), PAYLOAD, attempts=3)

    for delivery in (by_literal, by_name):
        assert (delivery.delivered, delivery.attempts) == (False, 0)
        assert delivery.error is not None and " address carrying " in delivery.error
    assert resolved == ["rebinding.example"]
    assert transport.hosts == []  # not one request was handed to the transport


async def test_the_sender_still_sends_to_a_public_6to4_address() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["2002:808:808::1"]

    transport = RecordingTransport()
    sender = WebhookSender(WebhookUrlPolicy(resolver=resolve), transport=transport)
    delivery = await sender.send("https://hooks.example/hook", SecretStr("s"), PAYLOAD)

    assert delivery.delivered and delivery.attempts == 1
    assert transport.hosts == ["hooks.example"]  # the fake transport answered; nothing left the process
