"""Benchmark of the HTTP service: how many polls one worker answers, and what the service adds to one answer.

    .venv/bin/python bench/http_service.py [--clients 16] [--seconds 5] [--answers 15] [--json]

Why: chatbot backends poll `GET /v1/responses/{id}` while an answer runs, many users at once, so the poll is
the service's hot path; and the service (a thread and a response in the store, a background run, events
batched into the store, polling or SSE) should add little to an answer over calling `Bridge.answer` in-process.
On the worker that runs the answer, SSE followers and polls read it from memory (the run's live events and
parts so far), not from the store after the runner's next write. Goals: SSE adds at most 2 ms over
`Bridge.answer`; polling adds at most its poll interval (10 ms).

1. **Polls per second, one worker.** `omni-bridge serve` runs in its own process (SQLite store, the claude
   engine on the scripted fake, the sandbox for Omni), so this process is only the load: `--clients`
   concurrent keep-alive connections poll one finished response for `--seconds`, requests written by hand
   (an HTTP client library would cost this process more than the server costs), next to `GET /health` as the
   baseline (the same HTTP stack, no authentication, no store). Printed: requests per second and the
   latency percentiles of one request.
2. **Added latency of one answer.** In one process (the same sandbox, the same fake, the same question, a
   SQLite conversation store on both sides): `Bridge.answer(...)`, against the service on loopback answering
   `POST /v1/threads` then polled every 10 ms until `succeeded`, and then followed over SSE until its end.
   Median of `--answers` rounds, interleaved, after one warm-up answer each (identity resolution, MCP
   session, tool list). The differences are what the service adds: HTTP, the store writes, the runner's
   tasks sharing the loop with the answer, and (polling) up to one poll interval.

Loopback only; the fake answers in a fixed number of LLM turns (one tool call, then the answer).

With `--json` the last line is one JSON object: `health_per_s`, `polls_per_s` (with `_p50_ms`, `_p99_ms`),
`answer_python_ms`, `answer_sse_ms`, `answer_poll_ms` (medians) and `answer_sse_added_ms`,
`answer_poll_added_ms` (each against `answer_python_ms` of the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _serve
import httpx2

from omni_bridge._serving import serve_asgi
from omni_bridge.agent import Bridge
from omni_bridge.config import Settings, load_settings
from omni_bridge.sandbox import Sandbox, SandboxConfig
from omni_bridge.server import Service, create_app
from omni_bridge.stores import SqliteStore
from omni_bridge.testing import FakeAnthropic, ToolCall, tool_then_answer

KEY = "bench-service-key-0123456789"
USER = "alice"
QUESTION = "What is our revenue by region?"
POLL_SECONDS = 0.01
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Bridge-User": USER}


def _settings(sandbox_url: str, org_key: str, fake_url: str, data_dir: Path) -> Settings:
    return load_settings(
        None,
        omni_base_url=sandbox_url,
        omni_api_key=org_key,
        anthropic_api_key="bench-key",
        anthropic_base_url=fake_url,
        bridge_engine="claude",
        bridge_service_keys=f"bench:{KEY}",
        bridge_data_dir=data_dir,
    )


async def _answer_over_http(client: httpx2.AsyncClient, *, sse: bool) -> dict[str, Any]:
    created = (await client.post("/v1/threads", json={"message": {"text": QUESTION}})).json()["data"]
    response_id = created["response_id"]
    if sse:
        async with client.stream("GET", f"/v1/responses/{response_id}/events") as stream:
            async for line in stream.aiter_lines():
                if line == "event: end":
                    break
        return {"status": "succeeded"}
    while True:
        response: dict[str, Any] = (await client.get(f"/v1/responses/{response_id}")).json()["data"]
        if response["status"] not in ("queued", "running"):
            return response
        await asyncio.sleep(POLL_SECONDS)


async def _finished_response(client: httpx2.AsyncClient) -> str:
    response = await _answer_over_http(client, sse=False)
    assert response["status"] == "succeeded", response
    return str(response["id"])


async def _hammer(url: str, path: str, *, clients: int, seconds: float) -> tuple[float, list[float]]:
    """`clients` keep-alive connections GET `path` for `seconds`: requests per second and each one's latency.

    The requests are written by hand on asyncio streams: an HTTP client library in this process would cost
    more CPU per request than the server, and the figure would be the client's.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items())
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def poller() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (started := time.perf_counter()) < deadline:
                writer.write(request)
                status = await reader.readline()
                assert b" 200 " in status, status
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()
    await asyncio.gather(*(poller() for _ in range(clients)))
    latencies.sort()
    return len(latencies) / (time.perf_counter() - began), latencies


async def bench_polls(settings: Settings, figures: dict[str, float], *, clients: int, seconds: float) -> None:
    assert settings.omni_api_key is not None
    env = _serve.serve_env(
        sandbox_url=str(settings.omni_base_url),
        org_key=settings.omni_api_key.get_secret_value(),
        model_url=str(settings.anthropic_base_url),
        service_key=KEY,
        data_dir=settings.bridge_data_dir,
    )
    async with _serve.serve(env, settings.bridge_data_dir) as server:
        url = server.url
        async with httpx2.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            response_id = await _finished_response(client)
        print(f"1. GET requests to one worker (its own process), {clients} keep-alive clients, {seconds:g} s each")
        for name, key, path in (
            ("GET /health (baseline: no auth, no store)", "health", "/health"),
            ("GET /v1/responses/{id} (a finished one)", "polls", f"/v1/responses/{response_id}"),
        ):
            rate, latencies = await _hammer(url, path, clients=clients, seconds=seconds)
            p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
            print(f"   {name:<44} {rate:>7,.0f} req/s   p50 {_ms(p50)}, p99 {_ms(p99)}")
            figures |= {f"{key}_per_s": rate, f"{key}_p50_ms": p50 * 1000, f"{key}_p99_ms": p99 * 1000}


async def bench_added_latency(settings: Settings, figures: dict[str, float], *, answers: int) -> None:
    # The same kind of store as the service's (SQLite), so only the service's own work differs.
    conversations = SqliteStore(settings.bridge_data_dir / "direct-bridge.db")
    async with conversations, Bridge(settings, store=conversations) as bridge:
        service = Service(settings, worker_id="bench")
        async with serve_asgi(create_app(settings, service=service)) as url:
            async with httpx2.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as client:
                ways: dict[str, Callable[[], Awaitable[object]]] = {
                    "python": lambda: bridge.answer(user=USER, question=QUESTION),
                    "poll": lambda: _answer_over_http(client, sse=False),
                    "sse": lambda: _answer_over_http(client, sse=True),
                }
                timings: dict[str, list[float]] = {name: [] for name in ways}
                for round_ in range(answers + 1):
                    for name, way in ways.items():
                        started = time.perf_counter()
                        await way()
                        if round_ > 0:  # the first round warms up: identity, MCP session, tool list
                            timings[name].append(time.perf_counter() - started)
    base = statistics.median(timings["python"])
    print(f"2. one answer (one tool call, then the answer), median of {answers}")
    for key, values in timings.items():
        median = statistics.median(values)
        extra = "" if key == "python" else f"   ({_signed_ms(median - base)})"
        print(f"   {_WAY_NAMES[key]:<30} {_ms(median)}{extra}")
        figures[f"answer_{key}_ms"] = median * 1000
        if key != "python":
            figures[f"answer_{key}_added_ms"] = (median - base) * 1000


_WAY_NAMES = {
    "python": "Bridge.answer (Python API)",
    "poll": "service, polled every 10 ms",
    "sse": "service, followed over SSE",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _signed_ms(seconds: float) -> str:
    return f"{seconds * 1000:+.1f} ms"


async def main(clients: int, seconds: float, answers: int, *, as_json: bool = False) -> None:
    figures: dict[str, float] = {}
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.02))
    fake = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "revenue by region"})))
    with tempfile.TemporaryDirectory() as tmp, sandbox.run_in_thread() as sandbox_url, fake.run_in_thread() as fake_url:
        settings = _settings(sandbox_url, sandbox.config.org_key, fake_url, Path(tmp))
        await bench_polls(settings, figures, clients=clients, seconds=seconds)
        await bench_added_latency(settings, figures, answers=answers)
    if as_json:
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent polling clients (default 16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to poll (default 5)")
    parser.add_argument("--answers", type=int, default=15, help="answers timed per way (default 15)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.seconds, args.answers, as_json=args.json))
