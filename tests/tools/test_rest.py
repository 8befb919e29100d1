"""`OmniRestClient` against the sandbox over loopback: lookups, fallbacks, retries, errors, AI jobs, secrets."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError, OmniError, OmniHTTPError
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import JobState, OmniRestClient, shared_ssl_context, verify_webhook
from tests.conftest import Served

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
API_KEY_LIKE = "sk-omni-DO-NOT-LEAK-7f3a9c"


class Waits:
    """A `sleep` for the client that records what it was asked to wait, and can end an outage meanwhile."""

    def __init__(self, during_wait: Callable[[], None] | None = None) -> None:
        self.asked: list[float] = []
        self._during_wait = during_wait

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        if self._during_wait is not None:
            self._during_wait()


@pytest.fixture(scope="module")
def faulty() -> Iterator[Served]:
    """A sandbox of this module's own, for fault knobs; its jobs stay QUEUED (30 s steps) so they can be cancelled."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=30))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


@pytest.fixture
def faults(faulty: Served) -> Iterator[Served]:
    try:
        yield faulty
    finally:
        faulty.sandbox.set_faults(
            error_rate=0.0,
            error_status=503,
            rate_limit_per_minute=None,
            scim_available=True,
            scim_ignores_filter=False,
        )


def count(served: Served, name: str) -> int:
    return served.sandbox.stats.counts[f"rest.{name}"]


def client(served: Served, **options: Any) -> OmniRestClient:
    return OmniRestClient(served.url, served.org_key, **options)


# --- embed users ----------------------------------------------------------------------------------------


async def test_finds_an_embed_user_by_external_id_with_one_scim_request(served: Served) -> None:
    before = count(served, "scim_list")
    async with client(served) as omni:
        alice = await omni.find_embed_user("alice")
        nobody = await omni.find_embed_user(f"nobody-{uuid.uuid4().hex}")
        by_id = await omni.get_embed_user(embed_user_id("alice"))
        unknown_id = await omni.get_embed_user(str(uuid.uuid4()))
    assert alice is not None and alice.id == embed_user_id("alice") and alice.embed_external_id == "alice"
    assert alice.display_name == "Alice Anders"
    assert nobody is None
    assert count(served, "scim_list") - before == 2
    assert by_id == alice and unknown_id is None


async def test_generate_session_upserts_a_user_the_lookup_then_finds_even_with_quotes(served: Served) -> None:
    external_id = f'o"brien-{uuid.uuid4().hex[:6]}'
    async with client(served) as omni:
        assert await omni.find_embed_user(external_id) is None
        session_id = await omni.generate_session(
            external_id, "Pat O'Brien", groups=["Finance"], user_attributes={"region": "East"}, entity="acme"
        )
        found = await omni.find_embed_user(external_id)
    assert session_id
    assert found is not None and found.embed_external_id == external_id and found.id == embed_user_id(external_id)
    assert [g.display for g in found.groups] == ["Finance"] and found.embed_entity == "acme"
    assert served.sandbox.directory.get(found.id).attributes == {"region": "East"}


async def test_pages_through_every_embed_user_when_scim_ignores_the_filter(faults: Served) -> None:
    sandbox = faults.sandbox
    prefix = uuid.uuid4().hex[:8]
    for i in range(120):  # more than one page of 100, as on a real instance where a new user was on page 2
        sandbox.directory.upsert_embed(f"{prefix}-filler-{i}", f"Filler {i}")
    target = f"{prefix}-newest"
    sandbox.directory.upsert_embed(target, "Newest User")
    pages = math.ceil(len(sandbox.directory.embed_users()) / 100)
    sandbox.set_faults(scim_ignores_filter=True)
    async with client(faults) as omni:
        before = count(faults, "scim_list")
        found = await omni.find_embed_user(target)
        after_found = count(faults, "scim_list")
        missing = await omni.find_embed_user(f"{prefix}-never-created")
    assert found is not None and found.id == embed_user_id(target) and found.embed_external_id == target
    assert after_found - before == pages >= 2
    assert missing is None and count(faults, "scim_list") - after_found == pages


async def test_falls_back_to_the_v0_list_when_scim_answers_404_and_stays_there(faults: Served) -> None:
    faults.sandbox.set_faults(scim_available=False)
    scim_before, v0_before = count(faults, "scim_list"), count(faults, "v0_embed_users")
    async with client(faults) as omni:
        bob = await omni.find_embed_user("bob")
        scim_after_first = count(faults, "scim_list")
        carol = await omni.find_embed_user("carol")
        nobody = await omni.find_embed_user("nobody-at-all")
    assert bob is not None and bob.id == embed_user_id("bob") and bob.display_name == "Bob Brown"
    assert carol is not None and carol.id == embed_user_id("carol") and [g.display for g in carol.groups] == ["Finance"]
    assert nobody is None
    assert scim_after_first - scim_before == 2  # `users`, then the spec's `Users` spelling
    assert count(faults, "scim_list") == scim_after_first  # later lookups go straight to the v0 list
    assert count(faults, "v0_embed_users") - v0_before == 3


# --- models and topics ------------------------------------------------------------------------------------


async def test_lists_models_and_their_topics(served: Served) -> None:
    async with client(served) as omni:
        models = await omni.list_models()
        shared = await omni.list_models(model_kind="SHARED", name="ecommerce")
        topics = await omni.list_topics(ECOMMERCE)
        with pytest.raises(OmniHTTPError) as missing:
            await omni.list_topics(str(uuid.uuid4()))
    assert ECOMMERCE in {m.id for m in models} and len(models) >= 2
    assert [m.id for m in shared] == [ECOMMERCE] and shared[0].model_kind == "SHARED"
    assert "order_items" in {t.name for t in topics} and all(t.base_view_name for t in topics)
    assert missing.value.status == 404 and missing.value.path.endswith("/topic")


# --- retries ---------------------------------------------------------------------------------------------


async def test_a_429_with_retry_after_is_retried_and_then_succeeds(faults: Served) -> None:
    faults.sandbox.set_faults(error_rate=1.0, error_status=429)
    waits = Waits(during_wait=lambda: faults.sandbox.set_faults(error_rate=0.0))
    before = count(faults, "list_models")
    async with client(faults, sleep=waits) as omni:
        models = await omni.list_models()
    assert ECOMMERCE in {m.id for m in models}
    assert len(waits.asked) == 1 and 1.0 <= waits.asked[0] <= 1.1  # the sandbox's `Retry-After: 1`, plus jitter
    assert count(faults, "list_models") - before == 2


async def test_a_retry_after_longer_than_max_retry_wait_is_capped(faults: Served) -> None:
    faults.sandbox.set_faults(rate_limit_per_minute=1)
    waits = Waits(during_wait=lambda: faults.sandbox.set_faults(rate_limit_per_minute=None))
    async with client(faults, max_retry_wait=2.5, sleep=waits) as omni:
        await omni.list_models()  # uses up the minute's one request
        assert waits.asked == []
        models = await omni.list_models()  # 429 with `Retry-After` of about a minute
    assert models and waits.asked == [2.5]


async def test_retry_after_as_an_http_date_is_honoured_and_capped() -> None:
    # The sandbox only sends delta-seconds; an HTTP date needs a scripted answer.
    retry_after = iter(
        [
            email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True),
            email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True),
            email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True),
            "soon, maybe",
        ]
    )
    answers: list[str] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        if len(answers) % 2 == 0:
            answers.append("429")
            return httpx2.Response(429, headers={"Retry-After": next(retry_after)}, json={"detail": "slow down"})
        answers.append("200")
        return httpx2.Response(200, json={"records": [], "pageInfo": {"hasNextPage": False}})

    waits = Waits()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        async with OmniRestClient("https://acme.omniapp.co", API_KEY_LIKE, http=http, sleep=waits) as omni:
            for _ in range(4):
                assert await omni.list_models() == []
    date_wait, far_wait, past_wait, unreadable_wait = waits.asked
    assert 18 <= date_wait <= 22  # about 20 s, as the date says (1 s resolution, 10% jitter)
    assert far_wait == 30.0  # an hour is capped at max_retry_wait
    assert past_wait == 0.0
    assert 0.25 <= unreadable_wait <= 0.5  # unreadable: exponential backoff instead


async def test_a_5xx_that_persists_exhausts_the_retries_and_raises_omnis_detail(faults: Served) -> None:
    faults.sandbox.set_faults(error_rate=1.0, error_status=503)
    waits = Waits()
    before = count(faults, "list_models")
    async with client(faults, max_retries=2, sleep=waits) as omni:
        with pytest.raises(OmniHTTPError) as caught:
            await omni.list_models()
    error = caught.value
    assert (error.status, error.detail) == (503, "Service unavailable (injected)")
    assert (error.method, error.path) == ("GET", "/api/v1/models")
    assert count(faults, "list_models") - before == 3
    first, second = waits.asked  # exponential backoff with jitter: 0.5 s then 1 s, each at least halved
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


async def test_create_job_is_not_repeated_after_a_500_but_reads_are(faults: Served, alice_id: str) -> None:
    faults.sandbox.set_faults(error_rate=1.0, error_status=500)
    waits = Waits()
    jobs_before, reads_before = count(faults, "create_job"), count(faults, "list_models")
    async with client(faults, max_retries=2, sleep=waits) as omni:
        with pytest.raises(OmniHTTPError) as create_error:
            await omni.create_job(model_id=ECOMMERCE, prompt="revenue", user_id=alice_id)
        assert waits.asked == []
        with pytest.raises(OmniHTTPError):
            await omni.list_models()
    assert create_error.value.status == 500 and count(faults, "create_job") - jobs_before == 1
    assert count(faults, "list_models") - reads_before == 3 and len(waits.asked) == 2


async def test_create_job_refused_with_503_is_sent_again_and_creates_one_job(faults: Served, alice_id: str) -> None:
    faults.sandbox.set_faults(error_rate=1.0, error_status=503)
    waits = Waits(during_wait=lambda: faults.sandbox.set_faults(error_rate=0.0))
    jobs_before, requests_before = len(faults.sandbox.jobs.jobs), count(faults, "create_job")
    async with client(faults, sleep=waits) as omni:
        created = await omni.create_job(model_id=ECOMMERCE, prompt="revenue", user_id=alice_id)
    assert created.job_id in faults.sandbox.jobs.jobs
    assert count(faults, "create_job") - requests_before == 2 and len(waits.asked) == 1
    assert len(faults.sandbox.jobs.jobs) - jobs_before == 1


# --- transport failures ------------------------------------------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[str]:
    """A bare TCP server on loopback for misbehaviour HTTP servers cannot show; waits for its handlers at exit."""
    handlers: list[asyncio.Task[None]] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await handle(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with asyncio.timeout(5):
            await asyncio.gather(*handlers)


@contextlib.asynccontextmanager
async def hanging_up_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads each request and closes the connection without answering."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        await reader.readexactly(length)
        received.append(head.split(b"\r\n")[0])

    async with raw_server(handle) as url:
        yield url, received


async def test_a_connection_lost_after_sending_is_retried_for_reads_but_never_for_create_job() -> None:
    waits = Waits()
    async with hanging_up_server() as (url, received):
        async with OmniRestClient(url, API_KEY_LIKE, max_retries=2, sleep=waits) as omni:
            with pytest.raises(OmniError) as create_error:
                await omni.create_job(model_id=ECOMMERCE, prompt="revenue")
            creates = len(received)
            with pytest.raises(OmniError) as read_error:
                await omni.get_job(str(uuid.uuid4()))
    assert creates == 1 and received[0].startswith(b"POST /api/v1/ai/jobs")
    assert len(received) - creates == 3 and len(waits.asked) == 2
    message = str(create_error.value)
    assert "127.0.0.1/api/v1/ai/jobs" in message and "may have reached Omni" in message
    assert not isinstance(create_error.value, OmniHTTPError) and "/api/v1/ai/jobs/" in str(read_error.value)


async def test_an_unreachable_omni_is_retried_even_for_create_job_then_named_in_the_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed at once: nothing listens there
    waits = Waits()
    async with OmniRestClient(f"http://127.0.0.1:{port}", API_KEY_LIKE, max_retries=2, sleep=waits) as omni:
        with pytest.raises(OmniError) as caught:
            await omni.create_job(model_id=ECOMMERCE, prompt="revenue")
    assert len(waits.asked) == 2  # the request never left: sending it again cannot duplicate the job
    assert "127.0.0.1/api/v1/ai/jobs could not connect" in str(caught.value)


async def test_a_request_that_gets_no_answer_times_out_as_an_omni_error() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and hangs up

    async with raw_server(never_answer) as url:
        async with OmniRestClient(url, API_KEY_LIKE, timeout=0.05, max_retries=0) as omni:
            with pytest.raises(OmniError) as caught:
                await omni.list_models()
    assert "timed out after 0.05s" in str(caught.value) and "/api/v1/models" in str(caught.value)


# --- AI jobs ------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]]:
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def hook(request: Request) -> Response:
        await received.put((dict(request.headers), await request.body()))
        return Response(status_code=204)

    async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield f"{url}/hook", received


async def test_an_ai_job_runs_for_the_user_from_create_to_result(served: Served, alice_id: str) -> None:
    secret = "whsec-" + uuid.uuid4().hex
    async with webhook_receiver() as (hook_url, received), client(served) as omni:
        created = await omni.create_job(
            model_id=ECOMMERCE,
            prompt="total revenue by region",
            user_id=alice_id,
            webhook_url=hook_url,
            webhook_signing_secret=SecretStr(secret),
            webhook_metadata={"ticket": 42},
        )
        first = await omni.get_job(created.job_id, user_id=alice_id)
        async with asyncio.timeout(10):
            headers, body = await received.get()
        status = await omni.get_job(created.job_id, user_id=alice_id)
        result = await omni.get_job_result(created.job_id, user_id=alice_id)
        cancelled = await omni.cancel_job(created.job_id, user_id=alice_id)
    assert first.id == created.job_id and first.user_id == alice_id and first.conversation_id == created.conversation_id
    event = verify_webhook(secret, headers, body)
    assert (event["jobId"], event["status"], event["metadata"]) == (created.job_id, "COMPLETE", {"ticket": 42})
    assert status.state is JobState.COMPLETE and status.state.terminal and status.completed_at is not None
    assert status.result_summary and status.error is None and status.omni_chat_url == created.omni_chat_url
    assert result.message and [a.type for a in result.actions] == ["generate_query", "summarize"]
    rows = result.query_results[0]
    assert rows.status == "success" and rows.csv_result is not None
    assert rows.csv_result.splitlines()[1:] and all(
        line.startswith("West") for line in rows.csv_result.splitlines()[1:]
    )
    assert (cancelled.job_id, cancelled.state) == (created.job_id, JobState.COMPLETE)  # cancel is idempotent


async def test_a_queued_job_can_be_cancelled_and_then_has_no_result(faults: Served, alice_id: str) -> None:
    async with client(faults) as omni:
        created = await omni.create_job(model_id=ECOMMERCE, prompt="orders by month", user_id=alice_id)
        cancelled = await omni.cancel_job(created.job_id, user_id=alice_id)
        status = await omni.get_job(created.job_id, user_id=alice_id)
        with pytest.raises(OmniHTTPError) as no_result:
            await omni.get_job_result(created.job_id, user_id=alice_id)
    assert cancelled.state is JobState.CANCELLED
    assert status.state is JobState.CANCELLED and status.cancelled_by == alice_id and status.cancelled_at is not None
    assert no_result.value.status == 404 and "CANCELLED" in no_result.value.detail


async def test_a_second_job_in_a_busy_conversation_is_a_409_sent_once(faults: Served, alice_id: str) -> None:
    async with client(faults) as omni:
        first = await omni.create_job(model_id=ECOMMERCE, prompt="revenue", user_id=alice_id)
        before = count(faults, "create_job")
        with pytest.raises(OmniHTTPError) as busy:
            await omni.create_job(
                model_id=ECOMMERCE, prompt="and by month?", user_id=alice_id, conversation_id=first.conversation_id
            )
        await omni.cancel_job(first.job_id, user_id=alice_id)
    assert busy.value.status == 409 and busy.value.detail == "An active job already exists for this conversation"
    assert count(faults, "create_job") - before == 1


async def test_unknown_jobs_are_404_with_omnis_detail(served: Served) -> None:
    job_id = str(uuid.uuid4())
    async with client(served) as omni:
        with pytest.raises(OmniHTTPError) as caught:
            await omni.get_job(job_id)
    assert caught.value.status == 404 and caught.value.detail == f"Job {job_id} not found"
    assert str(caught.value) == f"Omni answered 404 (GET /api/v1/ai/jobs/{job_id}): Job {job_id} not found"


async def test_webhook_options_are_checked_before_anything_is_sent(served: Served) -> None:
    before = count(served, "create_job")
    async with client(served) as omni:
        with pytest.raises(ValueError, match="webhook_signing_secret"):
            await omni.create_job(model_id=ECOMMERCE, prompt="revenue", webhook_url="http://127.0.0.1:1/hook")
        with pytest.raises(ValueError, match="need webhook_url"):
            await omni.create_job(model_id=ECOMMERCE, prompt="revenue", progress_webhook=True)
    assert count(served, "create_job") == before


# --- configuration, lifecycle, secrets ------------------------------------------------------------------


async def test_the_api_key_never_appears_in_errors_reprs_or_logs(
    faults: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults.sandbox.set_faults(error_rate=1.0, error_status=503)
    waits = Waits(during_wait=lambda: faults.sandbox.set_faults(error_rate=0.0))
    async with OmniRestClient(faults.url, API_KEY_LIKE, sleep=waits) as omni:
        with pytest.raises(OmniHTTPError) as refused:  # a retried 503, then 401: the sandbox does not know this key
            await omni.list_models()
        shown = repr(omni)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OmniRestClient(f"http://127.0.0.1:{port}", SecretStr(API_KEY_LIKE), max_retries=1, sleep=waits) as down:
        with pytest.raises(OmniError) as unreachable:
            await down.find_embed_user("alice")
    assert refused.value.status == 401 and len(waits.asked) == 2
    assert "retry 1 of 3" in caplog.text  # the retry was logged, so the log check below saw real lines
    texts = [
        str(refused.value),
        repr(refused.value),
        str(unreachable.value),
        repr(unreachable.value),
        shown,
        caplog.text,
    ]
    assert shown == f"<OmniRestClient base_url={faults.url!r}>"
    assert not [t for t in texts if API_KEY_LIKE in t]


async def test_from_settings_takes_url_key_timeout_and_retries(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNI_API_KEY", raising=False)
    monkeypatch.delenv("OMNI_BASE_URL", raising=False)
    settings = load_settings(env_file=None, omni_base_url=served.url, omni_api_key=served.org_key, omni_max_retries=0)
    async with OmniRestClient.from_settings(settings) as omni:
        assert omni.base_url == served.url
        assert (await omni.find_embed_user("dan")) is not None
    sandbox_settings = load_settings(env_file=None)
    with pytest.raises(ConfigError, match="OMNI_BASE_URL"):
        OmniRestClient.from_settings(sandbox_settings, api_key="k")
    with pytest.raises(ConfigError, match="OMNI_API_KEY"):
        OmniRestClient.from_settings(sandbox_settings, base_url=served.url)
    async with OmniRestClient.from_settings(sandbox_settings, base_url=served.url, api_key=served.org_key) as omni:
        assert (await omni.find_embed_user("erin")) is not None


def test_bad_base_urls_and_empty_keys_are_refused() -> None:
    for url in ("acme.omniapp.co", "ftp://acme.omniapp.co", "https://user:pw@acme.omniapp.co", "https://a.co/?x=1"):
        with pytest.raises(ConfigError, match="OMNI_BASE_URL"):
            OmniRestClient(url, "key")
    with pytest.raises(ConfigError, match="OMNI_API_KEY"):
        OmniRestClient("https://acme.omniapp.co", " ")


async def test_an_injected_http_client_stays_open_and_an_own_one_is_closed(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        async with OmniRestClient(served.url + "/", served.org_key, http=http) as omni:
            assert omni.base_url == served.url
            assert await omni.find_embed_user("alice") is not None
        assert not http.is_closed
        own = client(served)
        await own.aclose()
        await own.aclose()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await own.find_embed_user("alice")
    assert shared_ssl_context() is shared_ssl_context()


async def test_an_answer_of_an_unexpected_shape_is_an_omni_error_not_a_crash() -> None:
    async def odd_status(request: Request) -> Response:
        return Response(json.dumps({"id": "j", "state": "DANCING"}), media_type="application/json")

    async def odd_result(request: Request) -> Response:
        return Response("<html>oops</html>", media_type="text/html")

    routes = [
        Route("/api/v1/ai/jobs/{job_id}", odd_status, methods=["GET"]),
        Route("/api/v1/ai/jobs/{job_id}/result", odd_result, methods=["GET"]),
    ]
    async with serve_asgi(Starlette(routes=routes)) as url, OmniRestClient(url, API_KEY_LIKE) as omni:
        with pytest.raises(OmniError, match="unexpected shape: state"):
            await omni.get_job("j")
        with pytest.raises(OmniError, match="not JSON"):
            await omni.get_job_result("j")
