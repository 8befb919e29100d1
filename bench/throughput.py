"""Benchmark of throughput: answers per second of `omni-bridge serve` on one worker, against `Bridge.answer`.

    .venv/bin/python bench/throughput.py [--concurrency 50] [--answers 500 | --seconds S] [--follow sse] [--json]

Why: a chatbot backend has many users asking at once, so what counts is how many answers one worker gives per
second and how long each one waits while the others run, and how much of that the service costs (HTTP, the
store, the runner, following the events) over the library doing the same work in-process.

How: the Omni sandbox and the zero-latency fake Messages API (`omni_bridge.testing.FakeAnthropic`: one `getData`
call, then the answer) run together in a process of their own, so the bridge under test shares a GIL with
neither, and both ways see the same backends. Then, in the same run:

1. **`Bridge.answer`**: `--concurrency` concurrent `Bridge.answer(...)` calls in this process (a SQLite
   conversation store, as the service keeps), one end user each, each asking again as soon as its answer is
   back.
2. **`serve`**: `omni-bridge serve` on one worker in its own process (SQLite store) and `--concurrency`
   conversations of one end user each (so no per-user cap of `server/_admission.py` is reached; the tenant's cap
   is raised above the concurrency): each posts its question as a new thread (`POST /v1/threads`) and follows
   the response to its end over SSE (`GET /v1/responses/{id}/events` until `event: end`, `--follow sse`, the
   default) or by polling `GET /v1/responses/{id}` every 10 ms (`--follow poll`); `--follow both` measures both,
   one after the other, on the same worker.

Each way first answers one question per user untimed (identity resolution, the MCP session, the tool list),
then `--answers` answers in all (or as many as `--seconds` allows). Printed: answers per second over the timed
phase, and the p50/p99 latency of one answer (from the call, or the POST, to the final message); non-2xx
responses are counted by status (a 429 waits `Retry-After` and posts again), and answers whose outcome is not
`completed` are counted too. The client load of the serve way runs in this process, which on a machine with
few cores competes with the worker for CPU: the serve figure includes what a client costs.
Loopback only; progress on stderr; with `--json`, one JSON object last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _serve
import httpx2

from omni_bridge.agent import Bridge
from omni_bridge.config import load_settings
from omni_bridge.stores import SqliteStore

KEY = "bench-throughput-service-key-0123456789"
QUESTION = "What is our revenue by region?"
POLL_SECONDS = 0.01
WAYS = ("sse", "poll")


@dataclass
class Load:
    """What one way's timed phase measured."""

    answers: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    """Each answer's outcome (`completed`, `errored`, `canceled`, or the response status that ended it)."""
    refused: Counter[int] = field(default_factory=Counter)
    """Non-2xx HTTP statuses seen, by status (serve only)."""

    def rate(self) -> float:
        return self.answers / self.seconds

    def figures(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_answers_per_s": round(self.rate(), 1),
            f"{prefix}_p50_ms": round(_serve.percentile(self.latencies, 0.50) * 1000, 1),
            f"{prefix}_p99_ms": round(_serve.percentile(self.latencies, 0.99) * 1000, 1),
            f"{prefix}_answers": self.answers,
            f"{prefix}_not_completed": sum(n for outcome, n in self.outcomes.items() if outcome != "completed"),
        }


async def run_load(
    ask: Callable[[str, Load], Awaitable[str]], *, name: str, concurrency: int, answers: int, seconds: float | None
) -> Load:
    """`concurrency` users asking one after another: a warm-up answer each, then the timed answers.

    `ask(user, load)` answers one question and returns its outcome (recording refusals in `load`). The timed
    phase ends after `answers` answers in all, or when `seconds` have passed (each user finishes the answer it
    is waiting for).
    """
    warm = Load()
    outcomes = await asyncio.gather(*(ask(_serve.bench_user(n), warm) for n in range(concurrency)))
    _serve.say(f"  {name}: warmed up {concurrency} users ({dict(Counter(outcomes))})")
    load = Load(refused=warm.refused)
    left = answers
    began = time.perf_counter()
    deadline = None if seconds is None else began + seconds

    async def conversation(user: str) -> None:
        nonlocal left
        while (left > 0) if deadline is None else (time.perf_counter() < deadline):
            left -= 1
            started = time.perf_counter()
            outcome = await ask(user, load)
            load.latencies.append(time.perf_counter() - started)
            load.outcomes[outcome] += 1
            load.answers += 1
            if load.answers % max(1, (answers if deadline is None else 1000) // 10) == 0:
                rate = load.answers / (time.perf_counter() - began)
                _serve.say(f"  {name}: {load.answers:,} answers ({rate:,.1f}/s)")

    await asyncio.gather(*(conversation(_serve.bench_user(n)) for n in range(concurrency)))
    load.seconds = time.perf_counter() - began
    return load


async def bench_bridge(b: _serve.Backends, data_dir: Path, **load: Any) -> Load:
    """`Bridge.answer` in this process, as the service's runner would call it, on a SQLite store."""
    settings = load_settings(
        None,
        omni_base_url=b.sandbox_url,
        omni_api_key=b.org_key,
        omni_rest_requests_per_minute=1_000_000,
        anthropic_api_key="bench-fake-anthropic-key",
        anthropic_base_url=b.model_url,
        bridge_engine="claude",
        bridge_data_dir=data_dir,
    )
    store = SqliteStore(data_dir / "bridge.db")
    async with store, Bridge(settings, store=store) as bridge:

        async def ask(user: str, _: Load) -> str:
            return (await bridge.answer(user=user, question=QUESTION)).outcome

        return await run_load(ask, name="Bridge.answer", **load)


async def _post_question(client: httpx2.AsyncClient, user: str, load: Load) -> str:
    """`POST /v1/threads` as `user` until accepted (a 429 waits its `Retry-After`); the new response's id."""
    while True:
        created = await client.post(
            "/v1/threads", json={"message": {"text": QUESTION}}, headers={"X-Bridge-User": user}
        )
        if created.is_success:
            return str(created.json()["data"]["response_id"])
        load.refused[created.status_code] += 1
        if created.status_code != 429:
            created.raise_for_status()
        await asyncio.sleep(float(created.headers.get("Retry-After", "1")))


async def _follow_sse(client: httpx2.AsyncClient, user: str, response_id: str, load: Load) -> str:
    """The response's events until `event: end`; the final message's outcome (`no_final_message` without one)."""
    outcome = "no_final_message"
    event = ""
    headers = {"X-Bridge-User": user}
    async with client.stream("GET", f"/v1/responses/{response_id}/events", headers=headers) as stream:
        if not stream.is_success:
            load.refused[stream.status_code] += 1
            return f"http_{stream.status_code}"
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
                if event == "end":
                    break
            elif event == "final_message" and line.startswith("data: "):
                outcome = json.loads(line.removeprefix("data: "))["message"]["outcome"]
    return outcome


async def _follow_poll(client: httpx2.AsyncClient, user: str, response_id: str, load: Load) -> str:
    """`GET /v1/responses/{id}` every `POLL_SECONDS` until it ends; `completed` for `succeeded`, else its status."""
    while True:
        got = await client.get(f"/v1/responses/{response_id}", headers={"X-Bridge-User": user})
        if not got.is_success:
            load.refused[got.status_code] += 1
        else:
            status = got.json()["data"]["status"]
            if status not in ("queued", "running"):
                return "completed" if status == "succeeded" else str(status)
        await asyncio.sleep(POLL_SECONDS)


async def bench_serve(b: _serve.Backends, data_dir: Path, follows: list[str], **load: Any) -> dict[str, Load]:
    """`omni-bridge serve` in its own process; each way of following, one after the other, on the same worker."""
    concurrency = load["concurrency"]
    env = _serve.serve_env(
        sandbox_url=b.sandbox_url,
        org_key=b.org_key,
        model_url=b.model_url,
        service_key=KEY,
        data_dir=data_dir,
        BRIDGE_MAX_RUNS_PER_TENANT=str(max(64, 2 * concurrency)),
    )
    loads: dict[str, Load] = {}
    async with _serve.serve(env, data_dir) as server:
        _serve.say(f"  serve is up at {server.url} (pid {server.pid})")
        limits = httpx2.Limits(max_connections=2 * concurrency, max_keepalive_connections=2 * concurrency)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx2.AsyncClient(base_url=server.url, headers=headers, timeout=120, limits=limits) as client:
            for follow in follows:
                follow_to_end = _follow_sse if follow == "sse" else _follow_poll

                async def ask(user: str, into: Load, follow_to_end: Any = follow_to_end) -> str:
                    response_id = await _post_question(client, user, into)
                    outcome: str = await follow_to_end(client, user, response_id, into)
                    return outcome

                loads[follow] = await run_load(ask, name=f"serve ({follow})", **load)
    return loads


def report(figures: dict[str, Any], loads: dict[str, Load]) -> None:
    base = figures["bridge_answers_per_s"]
    print(f"{figures['concurrency']} concurrent conversations, one tool call then the answer, zero-latency model")
    print(f"{'':<34}{'answers/s':>10}{'vs Bridge':>10}{'p50 ms':>9}{'p99 ms':>9}{'answers':>9}{'not ok':>8}")
    for name, prefix in (("Bridge.answer (in-process)", "bridge"), *(
        (f"serve, followed over {'SSE' if way == 'sse' else 'polls (10 ms)'}", _prefix(way)) for way in loads
    )):  # fmt: skip
        rate = figures[f"{prefix}_answers_per_s"]
        print(
            f"{name:<34}{rate:>10,.1f}{rate / base:>9.2f}×{figures[f'{prefix}_p50_ms']:>9.1f}"
            f"{figures[f'{prefix}_p99_ms']:>9.1f}{figures[f'{prefix}_answers']:>9}{figures[f'{prefix}_not_completed']:>8}"
        )
    if figures["serve_non_2xx"]:
        print(f"non-2xx responses from serve, by status: {figures['serve_non_2xx']}")


def _prefix(way: str) -> str:
    """The JSON keys' prefix of a way of following: `serve_` for the first measured, `serve_poll_` for polls."""
    return "serve" if way == "sse" else "serve_poll"


async def main(concurrency: int, answers: int, seconds: float | None, follow: str, *, as_json: bool) -> None:
    follows = list(WAYS) if follow == "both" else [follow]
    load = {"concurrency": concurrency, "answers": answers, "seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="omni-bridge-throughput-") as tmp:
        async with _serve.backends(Path(tmp), users=concurrency) as b:
            _serve.say(f"backends up (pid {b.pid}): sandbox {b.sandbox_url}, fake model {b.model_url}")
            (Path(tmp) / "bridge").mkdir()
            (Path(tmp) / "serve").mkdir()
            bridge = await bench_bridge(b, Path(tmp) / "bridge", **load)
            loads = await bench_serve(b, Path(tmp) / "serve", follows, **load)
    figures: dict[str, Any] = {"concurrency": concurrency, "follow": follow, **bridge.figures("bridge")}
    if follow == "poll":  # polls alone: they are the serve figures
        figures |= loads["poll"].figures("serve")
    else:
        for way, measured in loads.items():
            figures |= measured.figures(_prefix(way))
    refused: Counter[int] = sum((measured.refused for measured in loads.values()), Counter())
    figures["serve_non_2xx"] = {str(status): n for status, n in sorted(refused.items())}
    figures["serve_over_bridge_answers_per_s"] = round(figures["serve_answers_per_s"] / bridge.rate(), 3)
    report(figures, {"poll": loads["poll"]} if follow == "poll" else loads)
    if as_json:
        _serve.print_json(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50, help="conversations at once (default 50)")
    timed = parser.add_mutually_exclusive_group()
    timed.add_argument("--answers", type=int, default=500, help="timed answers per way, in all (default 500)")
    timed.add_argument("--seconds", type=float, help="time each way for this long instead of a number of answers")
    parser.add_argument(
        "--follow", choices=("sse", "poll", "both"), default="sse", help="how a conversation follows its answer (sse)"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    if args.concurrency < 1 or args.answers < 1 or (args.seconds is not None and args.seconds <= 0):
        parser.error("--concurrency, --answers and --seconds must be positive")
    asyncio.run(main(args.concurrency, args.answers, args.seconds, args.follow, as_json=args.json))
