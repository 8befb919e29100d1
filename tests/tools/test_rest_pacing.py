"""The bridge paces its own Omni REST calls per API key (`RestPacer`), on virtual clocks: no wall time is asserted.

A loopback server stands in for Omni's REST API and records what reaches it; the pacer's clock is the test's, so
"a minute later" is a step of that clock, never a wait.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.agent import Conversation, OmniIdentity
from omni_bridge.agent.engines.omni import OmniEngine
from omni_bridge.agent.engines.run import Run
from omni_bridge.agent.events import FinalMessage, new_message_id
from omni_bridge.config import load_settings
from omni_bridge.exceptions import OmniError
from omni_bridge.tools import (
    LOOPBACK_REQUESTS_PER_MINUTE,
    OMNI_REQUESTS_PER_MINUTE,
    MemoryArtifactStore,
    OmniRestClient,
    RestBudgetBusy,
    RestPacer,
    default_budget,
)
from tests.sandbox.mcp_helpers import wait_until

KEY = "org-key-pacing-DO-NOT-LEAK-7d41"
OTHER_KEY = "org-key-pacing-other-DO-NOT-LEAK-19c2"
MODEL = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
USER = "0b8f5a4e-2f5e-4d0c-9a3b-6f1e2d3c4b5a"


class StepClock:
    """Virtual time whose `sleep` moves it forward at once (for one caller at a time, or turns taken upfront)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class ManualClock:
    """Virtual time that moves only when the test says so; `sleep` waits until it has moved far enough."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        entry = (self.now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for entry in [e for e in self._sleepers if e[0] <= self.now]:
            self._sleepers.remove(entry)
            entry[1].set_result(None)


@dataclass
class FakeOmni:
    """Omni's AI Jobs REST API on loopback: records each request (method, path, key, the clock's time)."""

    clock: StepClock | ManualClock | None = None
    polls_until_done: int = 3
    seen: list[tuple[str, str, str, float]] = field(default_factory=list)
    url: str = ""

    def _record(self, request: Request) -> None:
        now = self.clock() if self.clock is not None else 0.0
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append((request.method, request.url.path, key, now))

    async def create(self, request: Request) -> JSONResponse:
        self._record(request)
        return JSONResponse({"jobId": str(uuid.uuid4()), "conversationId": str(uuid.uuid4()), "omniChatUrl": "x"})

    async def status(self, request: Request) -> JSONResponse:
        self._record(request)
        job_id = request.path_params["job_id"]
        polls = sum(1 for method, path, _, _ in self.seen if method == "GET" and path.endswith(job_id))
        state = "COMPLETE" if polls > self.polls_until_done else "EXECUTING"
        return JSONResponse({"id": job_id, "state": state, "conversationId": "c"})

    async def result(self, request: Request) -> JSONResponse:
        self._record(request)
        return JSONResponse({"message": "Revenue is up.", "actions": []})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/ai/jobs", self.create, methods=["POST"]),
                Route("/api/v1/ai/jobs/{job_id}", self.status, methods=["GET"]),
                Route("/api/v1/ai/jobs/{job_id}/result", self.result, methods=["GET"]),
            ]
        )

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.seen]


@pytest.fixture
async def omni() -> AsyncIterator[FakeOmni]:
    fake = FakeOmni()
    async with serve_asgi(fake.app()) as url:
        fake.url = url
        yield fake


# --- the pacer itself -------------------------------------------------------------------------------------------


async def test_a_burst_beyond_the_budget_goes_n_at_once_then_n_more_each_minute_in_order() -> None:
    clock = StepClock()
    pacer = RestPacer(3, clock=clock, sleep=clock.sleep)
    turns = await asyncio.gather(*(pacer.acquire(max_wait=1_000) for _ in range(8)))
    assert turns == [0, 0, 0, 60, 60, 60, 120, 120]
    assert pacer.granted == 8


async def test_a_budget_below_one_a_minute_spaces_calls_further_apart() -> None:
    clock = StepClock()
    pacer = RestPacer(0.5, clock=clock, sleep=clock.sleep)
    assert await asyncio.gather(*(pacer.acquire(max_wait=1_000) for _ in range(3))) == [0, 120, 240]


async def test_a_turn_further_away_than_the_call_may_wait_fails_at_once_and_takes_no_turn() -> None:
    clock = StepClock()
    pacer = RestPacer(2, clock=clock, sleep=clock.sleep)
    await pacer.acquire(max_wait=30)
    clock.now = 10.0
    await pacer.acquire(max_wait=30)
    assert pacer.wait() == 50.0
    with pytest.raises(RestBudgetBusy) as refused:
        await pacer.acquire(max_wait=30)
    busy = refused.value
    assert isinstance(busy, OmniError) and busy.retryable and busy.error_type == "rate_limited"
    assert busy.retry_after == 50.0 and "nothing was sent" in str(busy)
    assert pickle.loads(pickle.dumps(busy)).retry_after == 50.0
    assert pacer.granted == 2 and clock.slept == []  # refused without waiting, and without taking a turn
    clock.now = 60.0  # the first call's minute is over: one turn is free again, the second's is not
    assert pacer.wait() == 0.0
    assert await pacer.acquire(max_wait=30) == 60.0
    assert pacer.wait() == 10.0


async def test_omni_gets_its_documented_budget_and_loopback_a_generous_one_unless_one_is_set() -> None:
    assert default_budget("https://acme.omniapp.co") == OMNI_REQUESTS_PER_MINUTE == 60
    for url in ("http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:2"):
        assert default_budget(url) == LOOPBACK_REQUESTS_PER_MINUTE

    async def budget_of(**values: object) -> float:
        settings = load_settings(None, omni_api_key=f"k-{uuid.uuid4()}", **values)  # a key of its own: a new pacer
        async with OmniRestClient.from_settings(settings) as rest:
            return rest.pacer.per_minute

    assert await budget_of(omni_base_url="https://acme.omniapp.co") == 60
    assert await budget_of(omni_base_url="http://127.0.0.1:9") == LOOPBACK_REQUESTS_PER_MINUTE
    # Set explicitly (environment, .env or an override), the budget applies to any host, loopback too.
    assert await budget_of(omni_base_url="http://127.0.0.1:9", omni_rest_requests_per_minute=5) == 5


# --- through the REST client ------------------------------------------------------------------------------------


async def test_calls_beyond_the_budget_reach_omni_only_as_the_clock_gives_them_turns(omni: FakeOmni) -> None:
    clock = ManualClock()
    omni.clock = clock
    pacer = RestPacer(3, clock=clock, sleep=clock.sleep)
    jobs = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(7)]
    async with OmniRestClient(omni.url, KEY, pacer=pacer, timeout=300) as rest:
        calls = [asyncio.create_task(rest.get_job(job)) for job in jobs]
        await wait_until(lambda: len(omni.seen) == 3 and clock.sleeping == 4)
        first = set(omni.paths())
        assert first == {f"/api/v1/ai/jobs/{job}" for job in jobs[:3]}  # the first three at once, in turn order
        clock.advance(59.0)
        await asyncio.sleep(0.05)
        assert len(omni.seen) == 3 and clock.sleeping == 4  # nothing more before the minute is over
        clock.advance(1.0)
        await wait_until(lambda: len(omni.seen) == 6 and clock.sleeping == 1)
        assert set(omni.paths()[3:]) == {f"/api/v1/ai/jobs/{job}" for job in jobs[3:6]}
        clock.advance(60.0)
        async with asyncio.timeout(5):
            statuses = await asyncio.gather(*calls)
    assert [s.id for s in statuses] == jobs and omni.paths()[6] == f"/api/v1/ai/jobs/{jobs[6]}"
    assert pacer.granted == len(omni.seen) == 7


async def test_two_clients_of_one_key_share_one_budget_and_another_key_has_its_own(omni: FakeOmni) -> None:
    job = str(uuid.uuid4())
    async with (
        OmniRestClient(omni.url, KEY, requests_per_minute=2, timeout=1) as first,
        OmniRestClient(omni.url, KEY, requests_per_minute=2, timeout=1) as second,
        OmniRestClient(omni.url, OTHER_KEY, requests_per_minute=2, timeout=1) as other,
    ):
        assert first.pacer is second.pacer and other.pacer is not first.pacer
        await first.get_job(job)
        await first.get_job(job)
        with pytest.raises(RestBudgetBusy) as refused:
            await second.get_job(job)  # the key's two calls of this minute are spent, by the other client
        assert len(omni.seen) == 2  # the refused call never left the machine
        await other.get_job(job)
        assert [key for _, _, key, _ in omni.seen] == [KEY, KEY, OTHER_KEY]
        for shown in (repr(first), repr(first.pacer), str(refused.value), repr(refused.value)):
            assert KEY not in shown and OTHER_KEY not in shown


async def test_polling_an_ai_job_stays_within_the_budget_and_waits_instead_of_failing(omni: FakeOmni) -> None:
    clock = StepClock()
    omni.clock = clock
    omni.polls_until_done = 6
    pacer = RestPacer(3, clock=clock, sleep=clock.sleep)
    async with OmniRestClient(omni.url, KEY, pacer=pacer, timeout=30) as rest:
        engine = OmniEngine(
            rest, artifacts=MemoryArtifactStore(), model_id=MODEL, poll_initial=0.5, poll_max=5.0, sleep=clock.sleep
        )
        identity = OmniIdentity(external_id="alice", user_id=USER, server=omni.url)
        run = Run(
            conversation=Conversation(identity=identity, engine="omni"),
            question="Revenue?",
            response_id=new_message_id(),
        )
        async with asyncio.timeout(10):
            events = [event async for event in engine.run(run)]
    last = events[-1]
    assert isinstance(last, FinalMessage) and last.message.outcome == "completed"
    methods = [(method, path.endswith("/result")) for method, path, _, _ in omni.seen]
    assert methods == [("POST", False)] + [("GET", False)] * 7 + [("GET", True)]  # no poll more than needed
    times = [at for _, _, _, at in omni.seen]
    assert all(later - earlier >= 60 for earlier, later in zip(times, times[3:], strict=False))  # 3 in any minute
    assert times[3] >= 60  # the fourth call (a poll) waited for the next minute rather than failing the run
    assert pacer.granted == len(omni.seen)  # every poll went through the key's budget
