"""Caps on the answers in flight per end user and per tenant: beyond them a new question gets 429 and is not stored.

The service runs on loopback with the sandbox for Omni and the scripted fake for Claude, whose answers are held
at a gate so a run stays in flight while the test asks again. Both backends: SQLite, and PostgreSQL where
`OMNI_BRIDGE_TEST_POSTGRES_URL` is set. The caps are counted in the store, so they hold across the two APIs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.server import Service
from omni_bridge.server._admission import Admission
from omni_bridge.server._envelope import ApiError
from omni_bridge.stores import MessageRecord, Owner, ResponseRecord, SqliteStore, ThreadRecord
from omni_bridge.testing import CapturedRequest, Reply, text_reply
from tests.conftest import Served
from tests.server.service_helpers import (
    KEY,
    Running,
    data_of,
    faults,
    running_service,
    service_settings,
    wait_for_response,
)

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    faults(served)
    yield
    faults(served)


class Gate:
    """Holds every Claude answer until opened (a run stays `running` meanwhile).

    Entered inside `running_service`, it opens on the way out, so a failing test ends instead of waiting forever
    for an answer it holds.
    """

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.held = 0

    async def __aenter__(self) -> Gate:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.open.set()

    async def responder(self, request: CapturedRequest) -> Reply:
        self.held += 1
        try:
            await self.open.wait()
        finally:
            self.held -= 1
        return text_reply("Done.")


def question(text: str) -> dict[str, Any]:
    return {"message": {"text": text}}


def job(**extra: Any) -> dict[str, Any]:
    return {"modelId": ECOMMERCE, "prompt": "What is our revenue by region?", **extra}


def jobs_client(svc: Running, user: str) -> httpx2.AsyncClient:
    """A client of the Omni-compatible jobs API, naming its end user with `X-Bridge-User`."""
    headers = {"Authorization": f"Bearer {KEY}", "X-Bridge-User": user}
    return httpx2.AsyncClient(base_url=svc.url, headers=headers, timeout=30)


def refused_in_envelope(answer: httpx2.Response, cap: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"].isdigit() and int(answer.headers["Retry-After"]) >= 1
    body = answer.json()
    assert body["data"] is None and body["error"]["type"] == "rate_limited"
    assert "in flight" in body["error"]["message"] and cap in body["error"]["message"]


def refused_as_omni(answer: httpx2.Response, cap: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"].isdigit() and int(answer.headers["Retry-After"]) >= 1
    body = answer.json()
    assert set(body) == {"detail", "status"} and body["status"] == 429
    assert "in flight" in body["detail"] and cap in body["detail"]


async def wait_for_job(client: httpx2.AsyncClient, job_id: str) -> None:
    async with asyncio.timeout(20):
        while True:
            state = (await client.get(f"/api/v1/ai/jobs/{job_id}")).json()["state"]
            if state in {"COMPLETE", "FAILED"}:
                return
            await asyncio.sleep(0.02)


def acme(user: str) -> Owner:
    return Owner(tenant="acme", user=user)


async def test_a_users_question_beyond_the_cap_gets_429_on_the_thread_api_and_nothing_is_stored(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    gate = Gate()
    async with (
        running_service(
            served, tmp_path, responder=gate.responder, bridge_store_url=store_url, bridge_max_runs_per_user=1
        ) as svc,
        gate,
    ):
        store = svc.service.store
        async with svc.client("alice") as alice, svc.client("bob") as bob:
            gate.open.set()
            idle = data_of(await alice.post("/v1/threads", json=question("First?")))
            await wait_for_response(alice, idle["response_id"])
            gate.open.clear()
            busy = data_of(await alice.post("/v1/threads", json=question("Second?")))
            await wait_for_response(alice, busy["response_id"], lambda r: r["status"] == "running")

            refused_in_envelope(await alice.post("/v1/threads", json=question("Third?")), "end user")
            idle_messages = f"/v1/threads/{idle['thread_id']}/messages"
            refused_in_envelope(await alice.post(idle_messages, json=question("And again?")), "end user")
            # Nothing of the refused questions was stored: no thread, no message, no response.
            threads = data_of(await alice.get("/v1/threads"))
            assert sorted(t["id"] for t in threads) == sorted([idle["thread_id"], busy["thread_id"]])
            assert [m["role"] for m in data_of(await alice.get(idle_messages))] == ["user", "assistant"]
            current = data_of(await alice.get(f"/v1/threads/{idle['thread_id']}/response"))
            assert current["id"] == idle["response_id"]
            assert await store.count_active(acme("alice")) == (1, 1)

            other = await bob.post("/v1/threads", json=question("Bob's question"))
            assert other.status_code == 201  # another end user is admitted

            gate.open.set()
            await wait_for_response(alice, busy["response_id"])
            again = await alice.post(idle_messages, json=question("And again?"))
            assert again.status_code == 201  # the first has ended: alice is admitted again
            await wait_for_response(alice, data_of(again)["response_id"])
            await wait_for_response(bob, data_of(other)["response_id"])
            assert await store.count_active(acme("alice")) == (0, 0)


async def test_a_users_job_beyond_the_cap_gets_429_on_the_jobs_api_and_nothing_is_stored(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    gate = Gate()
    async with (
        running_service(
            served, tmp_path, responder=gate.responder, bridge_store_url=store_url, bridge_max_runs_per_user=1
        ) as svc,
        gate,
    ):
        store = svc.service.store
        async with jobs_client(svc, "alice") as alice, jobs_client(svc, "bob") as bob, svc.client("alice") as threads:
            first = await alice.post("/api/v1/ai/jobs", json=job())
            assert first.status_code == 201, first.text
            conversation = str(uuid.uuid4())
            refused_as_omni(await alice.post("/api/v1/ai/jobs", json=job(conversationId=conversation)), "end user")
            assert await store.get_thread(acme("alice"), conversation) is None  # nothing stored for it
            # The caps count one store: a question on the thread API is refused alike while the job runs.
            refused_in_envelope(await threads.post("/v1/threads", json=question("Meanwhile?")), "end user")
            assert len(await store.list_threads(acme("alice"))) == 1
            assert await store.count_active(acme("alice")) == (1, 1)

            by_bob = await bob.post("/api/v1/ai/jobs", json=job())
            assert by_bob.status_code == 201, by_bob.text  # another end user is admitted

            gate.open.set()
            await wait_for_job(alice, first.json()["jobId"])
            again = await alice.post("/api/v1/ai/jobs", json=job(conversationId=conversation))
            assert again.status_code == 201, again.text  # admitted again once the first job ended
            assert again.json()["conversationId"] == conversation
            await wait_for_job(alice, again.json()["jobId"])
            await wait_for_job(bob, by_bob.json()["jobId"])


async def test_a_tenant_beyond_its_cap_gets_429_on_both_apis_until_one_of_its_answers_ends(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    gate = Gate()
    async with (
        running_service(
            served,
            tmp_path,
            responder=gate.responder,
            bridge_store_url=store_url,
            bridge_max_runs_per_user=5,
            bridge_max_runs_per_tenant=2,
        ) as svc,
        gate,
    ):
        store = svc.service.store
        async with svc.client("alice") as alice, svc.client("bob") as bob, svc.client("carol") as carol:
            held = [data_of(await who.post("/v1/threads", json=question("Revenue?"))) for who in (alice, bob)]
            refused_in_envelope(await carol.post("/v1/threads", json=question("Mine?")), "tenant")
            async with jobs_client(svc, "carol") as carol_jobs:
                refused_as_omni(await carol_jobs.post("/api/v1/ai/jobs", json=job()), "tenant")
            assert await store.list_threads(acme("carol")) == []
            assert await store.count_active(acme("carol")) == (0, 2)

            gate.open.set()
            await wait_for_response(alice, held[0]["response_id"])
            admitted = await carol.post("/v1/threads", json=question("Mine?"))
            assert admitted.status_code == 201
            await wait_for_response(carol, data_of(admitted)["response_id"])
            await wait_for_response(bob, held[1]["response_id"])


# --- the admission itself, on a real store ----------------------------------------------------------------------


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "bridge.db") as store:
        yield store


async def ask(admission: Admission, store: SqliteStore, owner: Owner) -> bool:
    """Admit and store one new thread for `owner`; whether it was admitted."""
    thread = ThreadRecord(owner=owner, engine="claude")
    message = MessageRecord(thread_id=thread.id, owner=owner, role="user", parts=[])
    response = ResponseRecord(
        thread_id=thread.id,
        owner=owner,
        user_message_id=message.id,
        prompt="?",
        lease_expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    try:
        async with admission.admit(owner):
            await store.create_thread(thread, message, response)
    except ApiError as refused:
        assert refused.status == 429 and refused.headers == {"Retry-After": str(admission.retry_after)}
        return False
    return True


async def test_concurrent_questions_on_one_worker_never_overshoot_the_cap(sqlite: SqliteStore) -> None:
    admission = Admission(sqlite, per_user=2, per_tenant=3)
    admitted = await asyncio.gather(*(ask(admission, sqlite, acme("alice")) for _ in range(6)))
    assert sum(admitted) == 2 and await sqlite.count_active(acme("alice")) == (2, 2)
    assert len(await sqlite.list_threads(acme("alice"))) == 2  # the refused four left nothing behind
    admitted = await asyncio.gather(*(ask(admission, sqlite, acme(user)) for user in ("bob", "carol", "dave")))
    assert sum(admitted) == 1  # two of the three would take the tenant past its cap of 3
    assert await sqlite.count_active(acme("nobody")) == (0, 3)
    assert await ask(admission, sqlite, Owner(tenant="globex", user="alice"))  # another tenant has its own cap
    assert len(admission._locks) == 0  # no lock is kept for a tenant nobody is admitting


async def test_the_service_takes_its_caps_from_the_settings(served: Served, tmp_path: Path) -> None:
    settings = service_settings(served, tmp_path, None, bridge_max_runs_per_user=3, bridge_max_runs_per_tenant=7)
    service = Service(settings)
    try:
        assert (service.admission.per_user, service.admission.per_tenant) == (3, 7)
    finally:
        await service.aclose()
