"""Sending AI-job webhooks: which URLs may receive them, how they are signed and retried.

A webhook URL comes from the API's caller, and the bridge POSTs to it from inside the operator's network, so
an unchecked URL would let any caller reach internal services (server-side request forgery). `WebhookUrlPolicy`
accepts only `http`/`https` URLs whose host is public: an IP literal, or a name whose resolved addresses are
*all* public. Loopback, private, link-local, multicast, unspecified, reserved and other non-global addresses
are refused, and so are IPv6 addresses that carry such an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo,
IPv4-compatible; the rule is in `_webhook_addresses`), unless the host or its network is in
`BRIDGE_WEBHOOK_ALLOW`. The check runs when a job is created
(a 400 for the caller) and again before every delivery, since a name may resolve elsewhere by then; redirects
are never followed, so a public receiver cannot bounce the request inward.

`WebhookSender` signs each request exactly as Omni does (`omni_bridge.tools.sign_webhook_payload`), sends it
with `httpx2` (the HTTP client of the whole project) with a short timeout, and retries a terminal event a few
times with exponential backoff (progress events get one attempt, like Omni's). The signing secret and the
URL's path, query and credentials never reach a log line or an error: only the host is named.

`JobWebhooks` decides *when*: the service's runner tells it of each new progress line and of each response that
ends on this worker (including those its reaper ends after another worker died), and it sends the job's events
in order, in the runner's hook tasks, so a slow receiver never slows a run.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx2
from pydantic import JsonValue, SecretStr

from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.server._jobs_models import (
    parse_events,
    progress_of,
    progress_payload,
    step_count,
    terminal_payload,
)
from omni_bridge.server._runner import ResponseRunner
from omni_bridge.server._webhook_addresses import IPAddress, refusal, same_destination
from omni_bridge.stores import TERMINAL_STATUSES, ResponseRecord, ServiceStore
from omni_bridge.tools import shared_ssl_context, sign_webhook_payload

__all__ = ["Delivery", "JobWebhooks", "Resolver", "WebhookSender", "WebhookUrlError", "WebhookUrlPolicy"]

log = logging.getLogger("omni_bridge.server.webhooks")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> addresses`: how a webhook host name is resolved (the system resolver by default)."""
Sleep = Callable[[float], Awaitable[None]]

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT = "omni-bridge-webhooks"


class WebhookUrlError(ValueError):
    """A webhook URL the bridge will not send to; the message names the host and why, fit for a 400."""


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _parse_address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope (`fe80::1%eth0`) is not part of it


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int


class WebhookUrlPolicy:
    """Decides whether the bridge may POST to a webhook URL.

    ```python
    policy = WebhookUrlPolicy(allow=("127.0.0.1", "10.8.0.0/16", "hooks.internal"))
    await policy.check("https://example.com/omni-hook")  # raises WebhookUrlError when refused
    ```
    """

    def __init__(
        self, allow: Iterable[str] = (), *, resolver: Resolver | None = None, dns_timeout: float = 5.0
    ) -> None:
        """Build a policy.

        Args:
            allow: host names, addresses or networks (CIDR) allowed although they are not public.
            resolver: how host names are resolved; the system resolver (`getaddrinfo`) by default.
            dns_timeout: seconds one resolution may take before the URL is refused.

        Raises:
            ConfigError: an `allow` entry is neither a network nor a host name.
        """
        self._networks: list[IPNetwork] = []
        self._hosts: set[str] = set()
        for entry in (e.strip() for e in allow):
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not _looks_like_host(entry):
                    raise ConfigError(
                        f"BRIDGE_WEBHOOK_ALLOW: {entry!r} is neither a host name nor an address or network (CIDR)"
                    ) from None
                self._hosts.add(entry.lower().rstrip("."))
        self._resolve = resolver or _system_resolver
        self._dns_timeout = dns_timeout

    @classmethod
    def from_settings(
        cls, settings: Settings, *, resolver: Resolver | None = None, dns_timeout: float = 5.0
    ) -> WebhookUrlPolicy:
        """The policy of `BRIDGE_WEBHOOK_ALLOW` (see the constructor for the options)."""
        return cls(settings.bridge_webhook_allow, resolver=resolver, dns_timeout=dns_timeout)

    def __repr__(self) -> str:
        return f"<WebhookUrlPolicy allowed_hosts={len(self._hosts)} allowed_networks={len(self._networks)}>"

    async def check(self, url: str) -> None:
        """Refuse `url` unless the bridge may send webhooks to it.

        Raises:
            WebhookUrlError: not an absolute http(s) URL, or its host is (or resolves to) an address that is not
                public and not allowed, or the host name does not resolve.
        """
        target = _split(url)
        if target.host in self._hosts:
            return
        try:
            literal: IPAddress | None = _parse_address(target.host)
        except ValueError:
            literal = None
        if literal is not None:
            self._check_address(target.host, literal, resolved=False)
            return
        try:
            async with asyncio.timeout(self._dns_timeout):
                resolved = await self._resolve(target.host, target.port)
        except (OSError, TimeoutError, UnicodeError):
            raise WebhookUrlError(f"webhookUrl: the host {target.host!r} does not resolve") from None
        addresses = {_parse_address(a) for a in resolved}
        if not addresses:
            raise WebhookUrlError(f"webhookUrl: the host {target.host!r} does not resolve")
        for address in sorted(addresses, key=str):
            self._check_address(target.host, address, resolved=True)

    def _check_address(self, host: str, address: IPAddress, *, resolved: bool) -> None:
        if any(form in network for form in same_destination(address) for network in self._networks):
            return
        why = refusal(address)
        if why is None:
            return
        where = f"resolves to {address}, {why}" if resolved else f"is {why}"
        raise WebhookUrlError(
            f"webhookUrl: the host {host!r} {where}; webhooks are only sent to public addresses "
            "(an operator can allow a host or network with BRIDGE_WEBHOOK_ALLOW)"
        )


def _looks_like_host(entry: str) -> bool:
    labels = entry.lower().rstrip(".").split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() for label in labels)


def _split(url: str) -> _Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookUrlError("webhookUrl: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlError("webhookUrl: only http and https URLs can receive webhooks")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlError("webhookUrl: the URL has no host")
    return _Target(scheme, host, port if port is not None else (443 if scheme == "https" else 80))


def _host_of(url: str) -> str:
    """The URL's host, the only part of a webhook URL that may be logged (paths and queries can hold tokens)."""
    try:
        return urllib.parse.urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one webhook event went."""

    delivered: bool
    """A 2xx answer came back."""
    attempts: int
    """Requests sent (0 when the URL was refused before any)."""
    status_code: int | None = None
    """The last answer's HTTP status, if any answer came."""
    error: str | None = None
    """Why it was not delivered (the transport error's kind, or the refusal); never the URL or the secret."""


class WebhookSender:
    """Signs and POSTs webhook events, re-checking the URL before every attempt.

    Args:
        policy: the URL policy (the same as at job creation).
        timeout: seconds one request may take (connect, send, read).
        backoff: seconds before the first retry; each later wait doubles.
        transport: an `httpx2` transport to send through (tests); the default connects for real.
        sleep: how to wait between attempts.
    """

    def __init__(
        self,
        policy: WebhookUrlPolicy,
        *,
        timeout: float = 5.0,
        backoff: float = 0.5,
        transport: httpx2.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if timeout <= 0 or backoff < 0:
            raise ValueError("timeout must be positive and backoff not negative")
        self.policy = policy
        self._timeout = timeout
        self._backoff = backoff
        self._transport = transport
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<WebhookSender timeout={self._timeout:g}s policy={self.policy!r}>"

    async def send(
        self, url: str, secret: SecretStr, payload: Mapping[str, JsonValue], *, attempts: int = 1
    ) -> Delivery:
        """POST `payload` to `url`, signed with `secret`; never raises for a failed delivery.

        Args:
            url: the receiver (checked against the policy before each attempt).
            secret: the job's `webhookSigningSecret`.
            payload: the event; serialised once, so every attempt sends the same bytes (and `event_id`).
            attempts: how many requests at most: retried on transport errors, 408, 425, 429 and 5xx.

        Returns:
            What happened, for logs and tests.
        """
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        host = _host_of(url)
        event = payload.get("event_id")
        result = Delivery(delivered=False, attempts=0, error="not sent")
        # A client per event: webhooks are rare, the SSL context is shared (so it costs under a millisecond),
        # and nothing is left open when a run's task is cancelled.
        async with httpx2.AsyncClient(
            verify=shared_ssl_context(),
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            transport=self._transport,
        ) as client:
            for attempt in range(1, max(attempts, 1) + 1):
                try:
                    await self.policy.check(url)
                except WebhookUrlError as exc:
                    log.warning("webhook %s to %s not sent: %s", event, host, exc)
                    return Delivery(delivered=False, attempts=attempt - 1, error=str(exc))
                headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
                headers.update(sign_webhook_payload(secret, body))
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx2.HTTPError as exc:
                    result = Delivery(delivered=False, attempts=attempt, error=type(exc).__name__)
                else:
                    code = response.status_code
                    if 200 <= code < 300:
                        log.debug("webhook %s delivered to %s (%d)", event, host, code)
                        return Delivery(delivered=True, attempts=attempt, status_code=code)
                    result = Delivery(delivered=False, attempts=attempt, status_code=code, error=f"HTTP {code}")
                    if code not in _RETRYABLE:
                        break
                if attempt < attempts:
                    await self._sleep(self._backoff * 2 ** (attempt - 1))
        log.warning(
            "webhook %s to %s not delivered after %d attempt(s): %s", event, host, result.attempts, result.error
        )
        return result


TERMINAL_ATTEMPTS = 3
"""Requests a terminal event gets at most (progress events get one, as Omni documents for its own)."""
_MAX_FOLLOWED = 10_000


@dataclass
class _Followed:
    """What a job's webhooks have seen so far: events are sent one at a time, in order."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seq: int = 0
    steps: int = 0


class JobWebhooks:
    """Sends the webhooks of jobs: progress (when the job asked for it) and the terminal event.

    Attach it to the service's runner (`attach`): the runner reports each new progress line of a response it
    runs and each response that ends on this worker (its own runs, and those its reaper ends after another
    worker died). Events of one job are sent one after the other, so a receiver never gets a progress event
    after the terminal one; the hooks run in tasks of their own, so a slow receiver never slows a run.

    Args:
        store: the service store (progress reads the job's new events from it to number the steps).
        sender: how events are signed and sent.
    """

    def __init__(self, store: ServiceStore, sender: WebhookSender) -> None:
        self._store = store
        self.sender = sender
        self._followed: OrderedDict[str, _Followed] = OrderedDict()
        self.deliveries: list[tuple[str, str, Delivery]] = []
        """`(job id, status, delivery)` of the latest events sent (at most 1000), for diagnostics and tests."""

    def __repr__(self) -> str:
        return f"<JobWebhooks following={len(self._followed)} sent={len(self.deliveries)}>"

    def attach(self, runner: ResponseRunner) -> None:
        """Be told by `runner` of progress and ends."""
        runner.on_progress(self.progressed)
        runner.on_finished(self.finished)

    async def progressed(self, response: ResponseRecord, line: str) -> None:
        """A running response has a new progress line: a progress event, if it is a job that asked for them."""
        webhook = response.webhook
        if response.origin != "job" or webhook is None or not webhook.progress:
            return
        followed = self._follow(response.id)
        async with followed.lock:
            new = await self._store.events_after(response.owner, response.id, followed.seq) or []
            if new:
                followed.seq = new[-1].seq
                followed.steps += step_count(parse_events(new))
            current = response.model_copy(update={"status": "running", "progress": line, "updated_at": _now()})
            progress = progress_of(current, followed.steps)
            assert progress is not None
            await self._send(current, progress_payload(current, progress), attempts=1)

    async def finished(self, response: ResponseRecord) -> None:
        """A response ended: its terminal event, if it is a job with a webhook (none when it was cancelled: Omni
        documents no webhook for a cancelled job, and a receiver written for Omni expects none)."""
        if response.origin != "job" or response.webhook is None or response.status not in TERMINAL_STATUSES:
            return
        if response.status == "canceled":
            self._followed.pop(response.id, None)
            return
        followed = self._follow(response.id)
        async with followed.lock:
            await self._send(response, terminal_payload(response), attempts=TERMINAL_ATTEMPTS)
        self._followed.pop(response.id, None)

    def _follow(self, job_id: str) -> _Followed:
        followed = self._followed.get(job_id)
        if followed is None:
            followed = self._followed[job_id] = _Followed()
            while len(self._followed) > _MAX_FOLLOWED:  # jobs whose end another worker saw are forgotten
                self._followed.popitem(last=False)
        return followed

    async def _send(self, record: ResponseRecord, payload: dict[str, JsonValue], *, attempts: int) -> None:
        assert record.webhook is not None
        delivery = await self.sender.send(record.webhook.url, record.webhook.secret, payload, attempts=attempts)
        self.deliveries.append((record.id, str(payload["status"]), delivery))
        del self.deliveries[:-1000]


def _now() -> datetime:
    return datetime.now(UTC)
