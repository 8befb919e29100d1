"""Two `omni-bridge serve` processes on one PostgreSQL database, as two workers behind a load balancer.

Each test starts two real workers (`python -m omni_bridge.cli serve --port 0`) sharing a fresh
PostgreSQL schema (`BRIDGE_STORE_URL`), one service key, and one Omni sandbox served from this process. The
`omni` engine answers through the sandbox's AI Jobs, whose step time the tests turn up to keep a run going.
What is checked crosses the process boundary: a run started on worker 1 is followed, cancelled and polled on
worker 2, and a worker killed with SIGKILL has its run ended as `worker_lost` by the other one within the
lease time, with the thread's earlier messages intact.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.sandbox import Sandbox, SandboxConfig
from omni_bridge.sandbox._jobs import Job, JobState
from tests.stores._postgres import fresh_schema

SERVICE_KEY = "multi-worker-test-key-6f1c2a9e0b"
HEADERS = {"Authorization": f"Bearer {SERVICE_KEY}", "X-Bridge-User": "alice"}
QUESTION = "revenue by region"
FAST_STEP, SLOW_STEP = 0.05, 5.0
"""Sandbox AI-job step seconds: a quick answer, and a run that lasts long enough to cancel or kill."""
LEASE_SECONDS = 2
TERMINAL = ("succeeded", "failed", "canceled")
_LISTENING = re.compile(r"service listening on (http://\S+)")


@dataclass
class Worker:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    url: str = ""


@dataclass(frozen=True)
class Omni:
    sandbox: Sandbox
    url: str

    def jobs(self) -> list[Job]:
        return list(self.sandbox.jobs.jobs.values())  # copied at once: the sandbox's thread adds jobs

    def slow_down(self, step_seconds: float) -> None:
        self.sandbox.jobs.step_seconds = step_seconds


@pytest.fixture
def omni() -> Iterator[Omni]:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=FAST_STEP))
    with sandbox.run_in_thread() as url:
        yield Omni(sandbox, url)


def _environment(store_url: str, omni: Omni, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    env.update(
        OMNI_BASE_URL=omni.url,
        OMNI_API_KEY=omni.sandbox.config.org_key,
        BRIDGE_ENGINE="omni",
        BRIDGE_SERVICE_KEYS=f"acme:{SERVICE_KEY}",
        BRIDGE_STORE_URL=store_url,
        BRIDGE_LEASE_SECONDS=str(LEASE_SECONDS),
        BRIDGE_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


async def _started(worker: Worker) -> Worker:
    """Wait (bounded) for the worker to print the address it listens on."""
    async with asyncio.timeout(60):
        while not (found := _LISTENING.search(worker.log.read_text(encoding="utf-8", errors="replace"))):
            if worker.process.returncode is not None:
                pytest.fail(f"worker {worker.name} exited with {worker.process.returncode}:\n{_tail(worker)}")
            await asyncio.sleep(0.05)
    worker.url = found.group(1)
    return worker


async def _kill(worker: Worker) -> None:
    """SIGKILL the worker (if it still runs) and reap it."""
    if worker.process.returncode is None:
        worker.process.kill()
    async with asyncio.timeout(30):
        await worker.process.wait()


def _tail(worker: Worker) -> str:
    return worker.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@pytest.fixture
async def workers(omni: Omni, tmp_path: Path) -> AsyncIterator[tuple[Worker, Worker]]:
    with fresh_schema() as store_url:
        env = _environment(store_url, omni, tmp_path / "data")
        started: list[Worker] = []
        try:
            for name in ("worker-1", "worker-2"):
                log = tmp_path / f"{name}.log"
                with log.open("wb") as out:
                    process = await asyncio.create_subprocess_exec(
                        *(sys.executable, "-m", "omni_bridge.cli", "serve", "--port", "0", "--worker-id", name),
                        env=env,
                        cwd=tmp_path,  # no developer `.env` is read
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                started.append(Worker(name, process, log))
            first, second = [await _started(worker) for worker in started]
            yield first, second
        finally:
            for worker in started:
                await _kill(worker)


async def _poll(
    client: httpx2.AsyncClient, worker: Worker, response_id: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """GET the response on `worker` until `until(data)` holds (bounded by the caller's timeout)."""
    while True:
        answer = await client.get(f"{worker.url}/v1/responses/{response_id}", headers=HEADERS)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        if until(data):
            return data
        await asyncio.sleep(0.05)


async def _new_job(omni: Omni, known: set[str]) -> Job:
    """The sandbox job a run started (a job not in `known`), once Omni has it."""
    while True:
        for job in omni.jobs():
            if job.id not in known:
                return job
        await asyncio.sleep(0.05)


async def _follow(client: httpx2.AsyncClient, worker: Worker, response_id: str) -> list[str]:
    """Read the response's event stream on `worker` to its end; the event types, `end` included."""
    types: list[str] = []
    async with client.stream("GET", f"{worker.url}/v1/responses/{response_id}/events", headers=HEADERS) as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                types.append(line.removeprefix("event: "))
                if types[-1] == "end":
                    break
    return types


async def test_a_run_on_one_worker_is_followed_and_canceled_from_the_other(
    workers: tuple[Worker, Worker], omni: Omni
) -> None:
    worker_1, worker_2 = workers
    omni.slow_down(SLOW_STEP)
    known = {job.id for job in omni.jobs()}
    async with httpx2.AsyncClient(timeout=30) as client:
        created = await client.post(
            f"{worker_1.url}/v1/threads", headers=HEADERS, json={"message": {"text": QUESTION}, "engine": "omni"}
        )
        assert created.status_code == 201, created.text
        thread_id, response_id = created.json()["data"]["thread_id"], created.json()["data"]["response_id"]

        async with asyncio.timeout(60):
            await _poll(client, worker_2, response_id, lambda r: r["status"] == "running")
            job = await _new_job(omni, known)
        following = asyncio.create_task(_follow(client, worker_2, response_id))

        canceled = await client.post(f"{worker_2.url}/v1/responses/{response_id}/cancel", headers=HEADERS)
        assert canceled.status_code == 200, canceled.text
        async with asyncio.timeout(30):
            ended = await _poll(client, worker_2, response_id, lambda r: r["status"] in TERMINAL)
            types = await following

        assert ended["status"] == "canceled", _tail(worker_1)
        # Worker 1 ran the answer, so only its engine can have told Omni to stop the job.
        assert job.state is JobState.CANCELLED or job.cancel_requested_by is not None, job.state
        assert types[-2:] == ["final_message", "end"]
        messages = (await client.get(f"{worker_2.url}/v1/threads/{thread_id}/messages", headers=HEADERS)).json()
        assert [(m["role"], m.get("outcome")) for m in messages["data"]] == [("user", None), ("assistant", "canceled")]


async def test_a_worker_killed_mid_run_is_failed_as_worker_lost_and_the_thread_keeps_its_messages(
    workers: tuple[Worker, Worker], omni: Omni
) -> None:
    worker_1, worker_2 = workers
    async with httpx2.AsyncClient(timeout=30) as client:
        created = await client.post(
            f"{worker_1.url}/v1/threads", headers=HEADERS, json={"message": {"text": QUESTION}, "engine": "omni"}
        )
        assert created.status_code == 201, created.text
        thread_id, first_id = created.json()["data"]["thread_id"], created.json()["data"]["response_id"]
        async with asyncio.timeout(60):
            first = await _poll(client, worker_2, first_id, lambda r: r["status"] in TERMINAL)
        assert first["status"] == "succeeded", first
        before = (await client.get(f"{worker_2.url}/v1/threads/{thread_id}/messages", headers=HEADERS)).json()["data"]

        omni.slow_down(SLOW_STEP)
        known = {job.id for job in omni.jobs()}
        posted = await client.post(
            f"{worker_1.url}/v1/threads/{thread_id}/messages", headers=HEADERS, json={"message": {"text": QUESTION}}
        )
        assert posted.status_code == 201, posted.text
        second_id = posted.json()["data"]["response_id"]
        async with asyncio.timeout(60):
            await _poll(client, worker_2, second_id, lambda r: r["status"] == "running")
            await _new_job(omni, known)

        await _kill(worker_1)
        async with asyncio.timeout(10 * LEASE_SECONDS):
            lost = await _poll(client, worker_2, second_id, lambda r: r["status"] in TERMINAL)

        assert lost["status"] == "failed" and lost["error"]["type"] == "worker_lost", lost
        assert "lease" in lost["error"]["message"]
        after = (await client.get(f"{worker_2.url}/v1/threads/{thread_id}/messages", headers=HEADERS)).json()["data"]
        assert after[:2] == before
        assert [(m["role"], m.get("outcome")) for m in after[2:]] == [("user", None), ("assistant", "errored")]

        # The thread is not stuck: worker 2 answers the next question.
        omni.slow_down(FAST_STEP)
        again = await client.post(
            f"{worker_2.url}/v1/threads/{thread_id}/messages", headers=HEADERS, json={"message": {"text": QUESTION}}
        )
        assert again.status_code == 201, again.text
        async with asyncio.timeout(60):
            answered = await _poll(
                client, worker_2, again.json()["data"]["response_id"], lambda r: r["status"] in TERMINAL
            )
        assert answered["status"] == "succeeded", answered
