"""`RestTransport`: how one request reaches Omni's REST API, with the key, retries and error translation.

Why `httpx2`: both SDKs the bridge is built on (`mcp`, `anthropic`) use `httpx2`, not `httpx`, so one HTTP stack
serves everything. Building an `httpx2` client costs ~28 ms and ~830 KiB when it makes its own SSL context and
~1 ms with a shared one, so every client built here shares one context, created on first use.

Retries: a 429 or a 5xx is retried with exponential backoff and jitter, honouring `Retry-After` (seconds or an
HTTP date) up to `max_retry_wait`. A request that cannot have been sent (the connection never opened) is retried
too. A request that may have reached Omni is retried only if repeating it is harmless: a non-idempotent request
is never repeated after a connection failure or a 5xx other than 503, because Omni may have acted on it (a 429
or 503 means Omni refused it, so that is retried). Errors become `OmniHTTPError` (status plus Omni's `detail`)
or, for transport failures, `OmniError` naming the host and path.

Pacing: every attempt first waits its turn in the key's `RestPacer` (`_rest_pacer`: one per API key per process,
shared by every transport of that key), so the bridge stays under Omni's budget of calls per minute instead of
learning it from 429s. A turn further away than the call's `timeout` fails at once with `RestBudgetBusy`.

The API key never appears in an error, a log line or a `repr`: it lives in a `SecretStr` and is only put on the
wire; log lines carry method, path and status, never the query string.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import math
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import BaseModel, SecretStr, ValidationError

from omni_bridge.exceptions import ConfigError, OmniError, OmniHTTPError
from omni_bridge.tools._rest_pacer import RestPacer, default_budget, pacer_for, pacer_name
from omni_bridge.tools._telemetry import rest_attempt

__all__ = ["RestTransport", "Sleep", "parse_answer", "path_segment", "shared_ssl_context"]

logger = logging.getLogger("omni_bridge.tools.rest")

Sleep = Callable[[float], Awaitable[None]]
_M = TypeVar("_M", bound=BaseModel)

_BACKOFF_BASE = 0.5
_REFUSED = frozenset({429, 503})
"""Statuses that mean Omni did not act on the request, so even a non-idempotent call may be sent again."""
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
"""Transport failures that happen before any byte of the request leaves the machine."""


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The one SSL context every `httpx2` client built by omni-bridge uses (created on first call)."""
    return httpx2.create_ssl_context()


class RestTransport:
    """Sends requests to one Omni instance with one organization API key; the base of `OmniRestClient`.

    Safe to share between tasks. Use it as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        timeout: float = 30,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        http: httpx2.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        requests_per_minute: float | None = None,
        pacer: RestPacer | None = None,
    ) -> None:
        """Build a client.

        Args:
            base_url: the Omni instance, e.g. `https://acme.omniapp.co` (the sandbox's URL works the same).
            api_key: an organization API key (needed for SCIM, generate-session and acting for users).
            timeout: seconds one HTTP request may take (connect, send, each read).
            max_retries: how many times a failed request is retried (0: never).
            max_retry_wait: the longest wait before a retry, whatever `Retry-After` asks for.
            http: an `httpx2.AsyncClient` to send through; it stays the caller's to close.
            sleep: how to wait before a retry (tests pass a recorder).
            requests_per_minute: the key's budget of calls (`OMNI_REST_REQUESTS_PER_MINUTE`); `None`: Omni's 60,
                or a generous one for a loopback host such as the sandbox (`default_budget`). Shared by every
                transport of the same key in this process; the lowest asked for wins.
            pacer: a pacer of this transport's own instead of the key's shared one (tests pass one on a
                virtual clock).

        Raises:
            ConfigError: the base URL is not an http(s) URL, the key is empty, or the budget is not positive.
        """
        self._base_url = _checked_base_url(base_url)
        secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not secret.get_secret_value().strip():
            raise ConfigError("OMNI_API_KEY: an Omni API key is required")
        if max_retries < 0 or max_retry_wait < 0 or timeout <= 0:
            raise ConfigError("timeout must be positive; max_retries and max_retry_wait must not be negative")
        if requests_per_minute is not None and not (math.isfinite(requests_per_minute) and requests_per_minute > 0):
            raise ConfigError("OMNI_REST_REQUESTS_PER_MINUTE: must be a positive number")
        self._api_key = secret
        self._timeout = httpx2.Timeout(timeout)
        self._timeout_seconds = timeout
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._per_minute = requests_per_minute if requests_per_minute is not None else default_budget(self._base_url)
        self._pacer_name = pacer_name(self._base_url, secret)
        self._own_pacer = pacer
        self._owns_http = http is None
        self._http = http if http is not None else httpx2.AsyncClient(verify=shared_ssl_context(), timeout=timeout)
        self._closed = False

    @property
    def base_url(self) -> str:
        """The Omni instance this client talks to (no trailing slash)."""
        return self._base_url

    @property
    def pacer(self) -> RestPacer:
        """The pacer this transport's calls wait in: the API key's, shared in this process (or its own)."""
        if self._own_pacer is not None:
            return self._own_pacer
        return pacer_for(self._pacer_name, self._per_minute)

    def pace_wait(self) -> float:
        """Seconds a call made now would wait for its turn under the key's budget (0: it would go at once)."""
        return self.pacer.wait()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} base_url={self._base_url!r}>"

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; build a new one")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object built it (an injected one stays open). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one request with retries; returns the decoded JSON body (`None` for an empty one).

        Args:
            idempotent: repeating the request is harmless, so it may be sent again after a failure that may
                have come after Omni acted on it (a connection lost mid-way, a 5xx other than 503).
        """
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; build a new one")
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": "omni-bridge",
        }
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            await self.pacer.acquire(max_wait=self._timeout_seconds)  # RestBudgetBusy: nothing was sent
            try:
                with rest_attempt(method, path, self._base_url, attempt) as traced:  # a span and a latency sample
                    response = await self._http.request(
                        method,
                        self._base_url + path,
                        params=params,
                        json=json_body,
                        headers=headers,
                        timeout=self._timeout,
                    )
                    traced.answered(response.status_code)
            except httpx2.TransportError as exc:
                sent = not isinstance(exc, _NOT_SENT)
                if last or (sent and not idempotent):
                    raise OmniError(self._transport_message(method, path, exc, sent=sent)) from exc
                failed = f"failed ({type(exc).__name__})"
                await self._wait_to_retry(attempt, self._backoff(attempt), method, path, failed)
                continue
            except httpx2.RequestError as exc:  # e.g. too many redirects: not worth repeating
                raise OmniError(self._transport_message(method, path, exc, sent=True)) from exc
            status = response.status_code
            if status < 400:
                return _decode(response, method, path)
            retryable = status in _REFUSED or (idempotent and status >= 500)
            if last or not retryable:
                raise OmniHTTPError(status, self._detail(response), method=method, path=path)
            delay = self._retry_delay(attempt, response.headers.get("Retry-After"))
            await self._wait_to_retry(attempt, delay, method, path, f"answered {status}")
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _wait_to_retry(self, attempt: int, delay: float, method: str, path: str, what: str) -> None:
        logger.info("Omni %s %s %s; retry %d of %d in %.2fs", method, path, what, attempt + 1, self._max_retries, delay)
        await self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter (between half and all of the step), capped at `max_retry_wait`."""
        return min(self._max_retry_wait, _BACKOFF_BASE * 2.0**attempt) * (0.5 + random.random() / 2)

    def _retry_delay(self, attempt: int, retry_after: str | None) -> float:
        seconds = _retry_after_seconds(retry_after, now=time.time())
        if seconds is None:
            return self._backoff(attempt)
        # Up to 10% more than asked, so that clients told the same `Retry-After` do not all return at once.
        return min(self._max_retry_wait, seconds * (1 + random.random() / 10))

    def _detail(self, response: httpx2.Response) -> str:
        """Omni's `detail` (or `message`/`error`) from an error body, else the body text, else the reason."""
        detail = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("detail", "message", "error"):
                value = body.get(key)
                if value:
                    detail = value if isinstance(value, str) else json.dumps(value)
                    break
        if not detail:
            detail = response.text.strip()[:500] or response.reason_phrase or "no detail"
        return self._redact(detail)

    def _transport_message(self, method: str, path: str, exc: httpx2.RequestError, *, sent: bool) -> str:
        host = httpx2.URL(self._base_url).host
        if isinstance(exc, httpx2.TimeoutException):
            what = f"timed out after {self._timeout_seconds:g}s ({type(exc).__name__})"
        elif not sent:
            what = f"could not connect ({type(exc).__name__}: {exc})"
        else:
            what = f"failed; the request may have reached Omni ({type(exc).__name__}: {exc})"
        return self._redact(f"Omni {method} {host}{path} {what}")

    def _redact(self, text: str) -> str:
        # Omni does not echo keys, but a proxy in between might: never let one into an error.
        return text.replace(self._api_key.get_secret_value(), "[redacted]")


def path_segment(value: str) -> str:
    """A path segment, percent-encoded so that an id can never change the path."""
    if not value:
        raise ValueError("an id is required")
    return quote(value, safe="")


def parse_answer(model: type[_M], data: Any, method: str, path: str) -> _M:
    """Omni's answer to `method path` read as `model`; an unexpected shape is an `OmniError` naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise OmniError(f"Omni's answer to {method} {path} has an unexpected shape: {problems}") from None


def _decode(response: httpx2.Response, method: str, path: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise OmniError(f"Omni answered {method} {path} with a body that is not JSON") from None


def _checked_base_url(base_url: str) -> str:
    try:
        url = httpx2.URL(str(base_url))
    except httpx2.InvalidURL:
        raise ConfigError(f"OMNI_BASE_URL: not a URL: {str(base_url)[:100]!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError("OMNI_BASE_URL: must be an http(s) URL such as https://acme.omniapp.co")
    if url.userinfo:
        raise ConfigError("OMNI_BASE_URL: must not contain credentials; the API key goes in OMNI_API_KEY")
    if url.query or url.fragment:
        raise ConfigError("OMNI_BASE_URL: must not have a query or fragment")
    return str(url).rstrip("/")


def _retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or `None` if unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
