"""`OmniRestClient`: the Omni REST endpoints the bridge uses (AI Jobs, embed users, generate-session, models).

Why `httpx2`: both SDKs the bridge is built on (`mcp`, `anthropic`) use `httpx2`, not `httpx`, so one HTTP stack
serves everything. Building an `httpx2` client costs ~28 ms and ~830 KiB when it makes its own SSL context and
~1 ms with a shared one (sdk-notes §0.6), so every client this module builds shares one context, created on
first use.

Retries: a 429 or a 5xx is retried with exponential backoff and jitter, honouring `Retry-After` (seconds or an
HTTP date) up to `max_retry_wait`. A request that cannot have been sent (the connection never opened) is retried
too. A request that may have reached Omni is retried only if repeating it is harmless: `create_job` is never
repeated after a connection failure or a 5xx other than 503, because Omni may have created the job (a 429 or 503
means Omni refused it, so that is retried). Errors become `OmniHTTPError` (status plus Omni's `detail`) or, for
transport failures, `OmniError` naming the host and path.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError, OmniError, OmniHTTPError
from omni_bridge.tools._rest_models import (
    EmbedUser,
    JobCancelled,
    JobCreated,
    JobResult,
    JobStatus,
    ModelInfo,
    ScimListResponse,
    TopicInfo,
)

__all__ = ["OmniRestClient", "shared_ssl_context"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_M = TypeVar("_M", bound=BaseModel)

_SCIM_PATHS = ("/api/scim/v2/embed/users", "/api/scim/v2/embed/Users")
"""The docs spell the SCIM route lower-case, the spec `/Users`, and Omni's routes are case-sensitive."""
_V0_EMBED_USERS = "/api/v0/users/embed"
_PAGE_SIZE = 100
_MAX_PAGES = 1000
_BACKOFF_BASE = 0.5
_REFUSED = frozenset({429, 503})
"""Statuses that mean Omni did not act on the request, so even a non-idempotent call may be sent again."""
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
"""Transport failures that happen before any byte of the request leaves the machine."""


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The one SSL context every `httpx2` client built by omni-bridge uses (created on first call)."""
    return httpx2.create_ssl_context()


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)


class _PageInfo(_Page):
    has_next_page: bool = False
    next_cursor: str | None = None


class _ModelPage(_Page):
    records: list[ModelInfo] = Field(default_factory=list)
    page_info: _PageInfo = _PageInfo()


class _V0UserPage(_Page):
    records: list[dict[str, Any]] = Field(default_factory=list)
    page_info: _PageInfo = _PageInfo()


class _TopicList(_Page):
    topics: list[TopicInfo] = Field(default_factory=list)


class _Session(_Page):
    session_id: str = Field(min_length=1)


class OmniRestClient:
    """An async client of Omni's REST API, acting with one organization API key.

    Use it as an async context manager, or call `aclose()`. Safe to share between tasks.

    ```python
    async with OmniRestClient("https://acme.omniapp.co", api_key) as omni:
        user = await omni.find_embed_user("cust-42")
    ```
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

        Raises:
            ConfigError: the base URL is not an http(s) URL, or the key is empty.
        """
        self._base_url = _checked_base_url(base_url)
        secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not secret.get_secret_value().strip():
            raise ConfigError("OMNI_API_KEY: an Omni API key is required")
        if max_retries < 0 or max_retry_wait < 0 or timeout <= 0:
            raise ConfigError("timeout must be positive; max_retries and max_retry_wait must not be negative")
        self._api_key = secret
        self._timeout = httpx2.Timeout(timeout)
        self._timeout_seconds = timeout
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._owns_http = http is None
        self._http = http if http is not None else httpx2.AsyncClient(verify=shared_ssl_context(), timeout=timeout)
        self._closed = False
        self._scim_path: str | None = None  # the SCIM spelling that answered, once one did
        self._scim_missing = False  # both SCIM spellings answered 404: use the v0 list from now on

    @classmethod
    def from_settings(
        cls, settings: Settings, *, base_url: str | None = None, api_key: str | SecretStr | None = None, **kwargs: Any
    ) -> OmniRestClient:
        """A client configured from `Settings` (`OMNI_BASE_URL`, `OMNI_API_KEY`, timeout and retries).

        Args:
            settings: the effective settings.
            base_url: overrides `OMNI_BASE_URL` (e.g. the embedded sandbox's URL when it is unset).
            api_key: overrides `OMNI_API_KEY`.
            **kwargs: further constructor options (`max_retry_wait`, `http`, `sleep`).

        Raises:
            ConfigError: no base URL or no API key is known.
        """
        url = base_url or (str(settings.omni_base_url) if settings.omni_base_url is not None else None)
        if url is None:
            raise ConfigError("OMNI_BASE_URL is unset: pass the embedded sandbox's URL as `base_url`")
        key = api_key if api_key is not None else settings.omni_api_key
        if key is None:
            raise ConfigError("OMNI_API_KEY is unset: an organization API key is needed to act for embed users")
        return cls(
            url,
            key,
            timeout=settings.omni_timeout_seconds,
            max_retries=settings.omni_max_retries,
            **kwargs,
        )

    @property
    def base_url(self) -> str:
        """The Omni instance this client talks to (no trailing slash)."""
        return self._base_url

    def __repr__(self) -> str:
        return f"<OmniRestClient base_url={self._base_url!r}>"

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("this OmniRestClient is closed; build a new one")
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

    # --- embed users ------------------------------------------------------------------------------------

    async def find_embed_user(self, external_id: str) -> EmbedUser | None:
        """The embed user whose `embedExternalId` is exactly `external_id`, or `None`.

        Asks SCIM with `filter=embedExternalId eq "<id>"`. An instance that ignores the filter (its answer lists
        other users) is paged through until the user turns up or the list ends. Where SCIM answers 404, the
        older `GET /api/v0/users/embed?externalId=` list is asked instead (and from then on).

        Raises:
            OmniHTTPError: Omni refused (e.g. 401/403), or no embed-user listing exists on the instance.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        if not self._scim_missing:
            try:
                return await self._find_in_scim(external_id)
            except OmniHTTPError as exc:
                if exc.status != 404:
                    raise
                self._scim_missing = True
                logger.info("SCIM embed-user listing answered 404; using %s instead", _V0_EMBED_USERS)
        return await self._find_in_v0(external_id)

    async def get_embed_user(self, user_id: str) -> EmbedUser | None:
        """The embed user with this Omni user id (SCIM), or `None` if Omni does not know it.

        Raises:
            OmniHTTPError: Omni refused the request.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"{self._scim_path or _SCIM_PATHS[0]}/{_segment(user_id)}"
        try:
            data = await self._request("GET", path)
        except OmniHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return _parse(EmbedUser, data, "GET", path)

    async def generate_session(
        self,
        external_id: str,
        name: str,
        *,
        groups: Sequence[str] | None = None,
        user_attributes: Mapping[str, Any] | None = None,
        entity: str | None = None,
        email: str | None = None,
        content_path: str = "/",
    ) -> str:
        """Create (or update) the embed user and an embed SSO session for it; returns the `sessionId`.

        Omni replaces the user's groups and attributes with the ones sent, so pass the current ones every time.
        The session must be redeemed within 5 minutes; the bridge only needs the upsert.

        Raises:
            OmniHTTPError: Omni refused (401 without an embed-scoped key, 403 if embedding is off, 400 bad input).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        body: dict[str, Any] = {"externalId": external_id, "name": name, "contentPath": content_path}
        if groups is not None:
            body["groups"] = list(groups)
        if user_attributes is not None:
            body["userAttributes"] = dict(user_attributes)
        if entity is not None:
            body["entity"] = entity
        if email is not None:
            body["email"] = email
        path = "/api/v1/embed/sso/generate-session"
        # An upsert plus a session that expires unused: repeating it changes nothing, so it may be retried.
        data = await self._request("POST", path, json_body=body, idempotent=True)
        return _parse(_Session, data, "POST", path).session_id

    # --- models and topics ---------------------------------------------------------------------------------

    async def list_models(self, *, model_kind: str | None = None, name: str | None = None) -> list[ModelInfo]:
        """Every model the key can see (all pages), optionally only of one `modelKind` or `name`.

        Raises:
            OmniHTTPError: Omni refused the request.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        params: dict[str, str] = {}
        if model_kind is not None:
            params["modelKind"] = model_kind
        if name is not None:
            params["name"] = name
        path = "/api/v1/models"
        models: list[ModelInfo] = []
        for _ in range(_MAX_PAGES):
            page = _parse(_ModelPage, await self._request("GET", path, params=params), "GET", path)
            models += page.records
            if not (page.page_info.has_next_page and page.page_info.next_cursor):
                return models
            params["cursor"] = page.page_info.next_cursor
        raise OmniError(f"GET {path}: gave up after {_MAX_PAGES} pages")

    async def list_topics(self, model_id: str) -> list[TopicInfo]:
        """The topics of one model.

        Raises:
            OmniHTTPError: Omni refused the request (404: no such model).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/models/{_segment(model_id)}/topic"
        return _parse(_TopicList, await self._request("GET", path), "GET", path).topics

    # --- AI jobs --------------------------------------------------------------------------------------------

    async def create_job(
        self,
        *,
        model_id: str,
        prompt: str,
        user_id: str | None = None,
        topic_name: str | None = None,
        conversation_id: str | None = None,
        webhook_url: str | None = None,
        webhook_signing_secret: str | SecretStr | None = None,
        webhook_metadata: Mapping[str, Any] | None = None,
        progress_webhook: bool = False,
    ) -> JobCreated:
        """Submit a question to Omni's own agent, acting for `user_id` (omni-api.md §2.1).

        Never sent twice: after a connection failure or a 5xx that may have come after the job was created, the
        error is raised instead of retried (only 429 and 503, which mean Omni refused it, are retried).

        Args:
            model_id: the shared model (UUID) to ask.
            prompt: the question.
            user_id: the Omni user to act for (needs an organization key); `None` acts as the key's owner.
            topic_name: pin a topic; `None` lets the AI pick one.
            conversation_id: continue a conversation (one active job per conversation, else 409).
            webhook_url: where Omni POSTs the terminal event (signed, see `verify_webhook`).
            webhook_signing_secret: the secret Omni signs webhooks with; required with `webhook_url`.
            webhook_metadata: returned unchanged in webhook payloads.
            progress_webhook: also POST progress events (best effort) to `webhook_url`.

        Raises:
            ValueError: a webhook option without `webhook_url`, or a `webhook_url` without a secret.
            OmniHTTPError: Omni refused (400 bad input, 403, 404 model or topic, 409 conversation busy).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        if webhook_url is not None and not webhook_signing_secret:
            raise ValueError("webhook_signing_secret is required with webhook_url")
        if webhook_url is None and (progress_webhook or webhook_metadata is not None):
            raise ValueError("progress_webhook and webhook_metadata need webhook_url")
        body: dict[str, Any] = {"modelId": model_id, "prompt": prompt}
        if topic_name is not None:
            body["topicName"] = topic_name
        if conversation_id is not None:
            body["conversationId"] = conversation_id
        if webhook_url is not None:
            secret = webhook_signing_secret
            body["webhookUrl"] = webhook_url
            body["webhookSigningSecret"] = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            body["progressWebhookEnabled"] = progress_webhook
            if webhook_metadata is not None:
                body["webhookMetadata"] = dict(webhook_metadata)
        path = "/api/v1/ai/jobs"
        data = await self._request("POST", path, params=_user(user_id), json_body=body, idempotent=False)
        return _parse(JobCreated, data, "POST", path)

    async def get_job(self, job_id: str, *, user_id: str | None = None) -> JobStatus:
        """The job's state, progress, summary or error (poll every 2-5 s, or use a webhook).

        Raises:
            OmniHTTPError: Omni refused the request (404: no such job for this caller).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/jobs/{_segment(job_id)}"
        return _parse(JobStatus, await self._request("GET", path, params=_user(user_id)), "GET", path)

    async def get_job_result(self, job_id: str, *, user_id: str | None = None) -> JobResult:
        """The full result of a `COMPLETE` job: answer, topic and each action with its CSV rows.

        Raises:
            OmniHTTPError: 404 when the job is not `COMPLETE` (or older than 14 days), or another refusal.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/jobs/{_segment(job_id)}/result"
        return _parse(JobResult, await self._request("GET", path, params=_user(user_id)), "GET", path)

    async def cancel_job(self, job_id: str, *, user_id: str | None = None) -> JobCancelled:
        """Ask Omni to cancel a job; a terminal job answers with its state unchanged (idempotent).

        Raises:
            OmniHTTPError: 400 for a `DELIVERING` job, 403 for someone else's job, 404 no such job.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/jobs/{_segment(job_id)}/cancel"
        data = await self._request("POST", path, params=_user(user_id), idempotent=True)
        return _parse(JobCancelled, data, "POST", path)

    # --- embed-user lookups ------------------------------------------------------------------------------

    async def _scim_list(self, params: dict[str, Any]) -> ScimListResponse:
        """One SCIM page, trying the other spelling of the route once if the first answers 404."""
        candidates = (self._scim_path,) if self._scim_path else _SCIM_PATHS
        for i, path in enumerate(candidates):
            try:
                data = await self._request("GET", path, params=params)
            except OmniHTTPError as exc:
                if exc.status == 404 and i + 1 < len(candidates):
                    continue
                raise
            self._scim_path = path
            return _parse(ScimListResponse, data, "GET", path)
        raise AssertionError("unreachable: the last candidate returns or raises")

    async def _find_in_scim(self, external_id: str) -> EmbedUser | None:
        # The filter value is a JSON string (RFC 7644 §3.4.2.2): quotes and backslashes escaped.
        expression = f"embedExternalId eq {json.dumps(external_id, ensure_ascii=False)}"
        page = await self._scim_list({"filter": expression, "count": _PAGE_SIZE})
        found = _exact(page.resources, external_id)
        ignored = any(u.embed_external_id != external_id for u in page.resources)
        if found is not None or not (ignored or page.total_results > len(page.resources)):
            return found
        logger.info("SCIM did not apply the embedExternalId filter; paging through all embed users")
        start = page.start_index + len(page.resources)
        for _ in range(_MAX_PAGES):
            if not page.resources or start > page.total_results:
                return None
            page = await self._scim_list({"startIndex": start, "count": _PAGE_SIZE})
            found = _exact(page.resources, external_id)
            if found is not None:
                return found
            start += len(page.resources)
        raise OmniError(f"GET {self._scim_path}: gave up paging embed users after {_MAX_PAGES} pages")

    async def _find_in_v0(self, external_id: str) -> EmbedUser | None:
        params: dict[str, Any] = {"externalId": external_id, "pageSize": _PAGE_SIZE}
        for _ in range(_MAX_PAGES):
            try:
                data = await self._request("GET", _V0_EMBED_USERS, params=params)
            except OmniHTTPError as exc:
                if exc.status != 404:
                    raise
                detail = f"no embed-user listing: both SCIM ({_SCIM_PATHS[0]}) and {_V0_EMBED_USERS} answered 404"
                raise OmniHTTPError(404, detail, method="GET", path=_V0_EMBED_USERS) from exc
            page = _parse(_V0UserPage, data, "GET", _V0_EMBED_USERS)
            for record in page.records:
                if record.get("externalId") == external_id and isinstance(record.get("id"), str):
                    return EmbedUser.from_v0_record(record)
            if not (page.page_info.has_next_page and page.page_info.next_cursor):
                return None
            params["cursor"] = page.page_info.next_cursor
        raise OmniError(f"GET {_V0_EMBED_USERS}: gave up paging embed users after {_MAX_PAGES} pages")

    # --- the one place requests are sent ---------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one request with retries; returns the decoded JSON body (`None` for an empty one)."""
        if self._closed:
            raise RuntimeError("this OmniRestClient is closed; build a new one")
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": "omni-bridge",
        }
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = await self._http.request(
                    method,
                    self._base_url + path,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=self._timeout,
                )
            except httpx2.TransportError as exc:
                sent = not isinstance(exc, _NOT_SENT)
                if last or (sent and not idempotent):
                    raise OmniError(self._transport_message(method, path, exc, sent=sent)) from exc
                delay = self._backoff(attempt)
                logger.info(
                    "Omni %s %s failed (%s); retry %d of %d in %.2fs",
                    method,
                    path,
                    type(exc).__name__,
                    attempt + 1,
                    self._max_retries,
                    delay,
                )
                await self._sleep(delay)
                continue
            except httpx2.RequestError as exc:  # e.g. too many redirects: not worth repeating
                raise OmniError(self._transport_message(method, path, exc, sent=True)) from exc
            status = response.status_code
            if status < 400:
                return self._decode(response, method, path)
            retryable = status in _REFUSED or (idempotent and status >= 500)
            if last or not retryable:
                raise OmniHTTPError(status, self._detail(response), method=method, path=path)
            delay = self._retry_delay(attempt, response.headers.get("Retry-After"))
            logger.info(
                "Omni %s %s answered %d; retry %d of %d in %.2fs",
                method,
                path,
                status,
                attempt + 1,
                self._max_retries,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter (between half and all of the step), capped at `max_retry_wait`."""
        return min(self._max_retry_wait, _BACKOFF_BASE * 2.0**attempt) * (0.5 + random.random() / 2)

    def _retry_delay(self, attempt: int, retry_after: str | None) -> float:
        seconds = _retry_after_seconds(retry_after, now=time.time())
        if seconds is None:
            return self._backoff(attempt)
        # Up to 10% more than asked, so that clients told the same `Retry-After` do not all return at once.
        return min(self._max_retry_wait, seconds * (1 + random.random() / 10))

    def _decode(self, response: httpx2.Response, method: str, path: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise OmniError(f"Omni answered {method} {path} with a body that is not JSON") from None

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


def _exact(users: list[EmbedUser], external_id: str) -> EmbedUser | None:
    return next((u for u in users if u.embed_external_id == external_id), None)


def _segment(value: str) -> str:
    """A path segment, percent-encoded so that an id can never change the path."""
    if not value:
        raise ValueError("an id is required")
    return quote(value, safe="")


def _user(user_id: str | None) -> dict[str, str] | None:
    return {"userId": user_id} if user_id is not None else None


def _parse(model: type[_M], data: Any, method: str, path: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise OmniError(f"Omni's answer to {method} {path} has an unexpected shape: {problems}") from None
