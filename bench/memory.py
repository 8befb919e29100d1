"""Benchmark of memory over time: N distinct users × 1 question through `omni-bridge serve`, and what it keeps after.

    .venv/bin/python bench/memory.py [--users 10000] [--concurrency 32] [--json]

Why: a server answers for an unbounded number of end users, and every per-user thing it holds (an identity, an
MCP session and its connection, a tool list, locks, usage, event followers) must go once the user has gone
quiet, or the process grows until it is killed (seen: 143 → 441 MB RSS and 20 → 2,313 file descriptors for 5,000
users, never coming back).

How: `omni-bridge serve` runs in its own process (SQLite store, the claude engine on the scripted fake Messages
API, one tool call then the answer) against the sandbox, which runs in *this* process with the users made up
front, so the serve process's figures are the bridge's alone. The MCP session idle time and the identity TTL are
set short (`--idle-seconds`), so expiry happens within the run. Each user asks one question (`POST /v1/threads`,
then polls its response until it ends), `--concurrency` at a time. The resident set size (RSS, `/proc/<pid>/
status`) and the open file descriptors (`/proc/<pid>/fd`) of the serve process are read:

- **start**: after one warm-up user has been answered and has expired (every code path loaded, nothing held);
- **peak**: the highest seen while the users are answered (sampled every 0.25 s);
- **after idle**: once every user has been idle past the expiry times (`--settle` seconds after the last answer).

Goal: after idle back within 20% of start. Linux only (`/proc`); loopback only; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _serve
import httpx2

from omni_bridge.sandbox import Sandbox, SandboxConfig
from omni_bridge.testing import FakeAnthropic, ToolCall, tool_then_answer

KEY = "bench-memory-service-key-0123456789"
QUESTION = "What is our revenue by region?"
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.25


@dataclass
class Sample:
    rss_kib: int
    fds: int


@dataclass
class Figures:
    samples: list[Sample] = field(default_factory=list)

    def peak(self) -> Sample:
        return Sample(max(s.rss_kib for s in self.samples), max(s.fds for s in self.samples))


def _sample(pid: int) -> Sample:
    return Sample(_serve.rss_kib(pid), _serve.open_fds(pid))


def _log_lines(data_dir: Path) -> list[str]:
    return (data_dir / "serve.log").read_text(errors="replace").splitlines()


async def _ask(client: httpx2.AsyncClient, user: str) -> str:
    """One question as `user`, polled to its end; the response's status (`failed:<error type>` when it failed)."""
    headers = {"X-Bridge-User": user}
    for _ in range(100):
        created = await client.post("/v1/threads", json={"message": {"text": QUESTION}}, headers=headers)
        if created.status_code != 429:
            break
        await asyncio.sleep(float(created.headers.get("Retry-After", "1")))
    created.raise_for_status()
    response_id = created.json()["data"]["response_id"]
    while True:
        data = (await client.get(f"/v1/responses/{response_id}", headers=headers)).json()["data"]
        status: str = data["status"]
        if status == "failed":  # counted by its error type, so a failure says what it was
            return f"failed:{(data.get('error') or {}).get('type', 'unknown')}"
        if status not in ("queued", "running"):
            return status
        await asyncio.sleep(POLL_SECONDS)


def _client(url: str, connections: int) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def _settle(pid: int, seconds: float) -> Sample:
    """Wait `seconds` (the users' expiry times and the service's idle work), then read the process."""
    await asyncio.sleep(seconds)
    return _sample(pid)


async def _answer_all(client: httpx2.AsyncClient, users: int, concurrency: int) -> dict[str, int]:
    statuses: dict[str, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(users):
        queue.put_nowait(number)
    done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            status = await _ask(client, _serve.bench_user(queue.get_nowait()))
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            if done % max(1, users // 20) == 0 or done == users:
                rate = done / (time.perf_counter() - started)
                _serve.say(f"  {done:>6,}/{users:,} answered ({rate:,.0f}/s)")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def _serve_env(sandbox_url: str, org_key: str, fake_url: str, data_dir: Path, idle_seconds: float) -> dict[str, str]:
    return _serve.serve_env(
        sandbox_url=sandbox_url,
        org_key=org_key,
        model_url=fake_url,
        service_key=KEY,
        data_dir=data_dir,
        BRIDGE_SESSION_IDLE_SECONDS=str(idle_seconds),
        BRIDGE_IDENTITY_TTL_SECONDS=str(idle_seconds),
        BRIDGE_MAX_RUNS_PER_TENANT="100000",
        BRIDGE_LOG_LEVEL="INFO",  # into serve.log: the service's own account of what it released
    )


async def main(users: int, concurrency: int, idle_seconds: float, settle: float, *, as_json: bool) -> None:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.02))
    _serve.say(f"making {users:,} embed users in the sandbox")
    for number in range(users):
        region = _serve.REGIONS[number % len(_serve.REGIONS)]
        sandbox.directory.upsert_embed(_serve.bench_user(number), f"Bench User {number}", attributes={"region": region})
    sandbox.directory.upsert_embed("bench-warmup", "Warm Up", attributes={"region": "West"})
    fake = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "revenue by region"})))
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox.run_in_thread() as sandbox_url,
        fake.run_in_thread() as fake_url,
    ):
        env = _serve_env(sandbox_url, sandbox.config.org_key, fake_url, Path(tmp), idle_seconds)
        async with _serve.serve(env, Path(tmp)) as server:
            url, pid = server.url, server.pid
            boot = _sample(pid)
            _serve.say(f"serve is up (pid {pid}): RSS {boot.rss_kib:,} KiB, {boot.fds} fds; warming up")
            # A client per phase, closed after it: its keep-alive connections are the bench's, not the bridge's.
            async with _client(url, 1) as client:
                assert await _ask(client, "bench-warmup") == "succeeded"
            start = await _settle(pid, settle)
            _serve.say(f"start (warm, idle): RSS {start.rss_kib:,} KiB, {start.fds} fds")

            figures = Figures([start])

            async def watch() -> None:
                while True:
                    figures.samples.append(_sample(pid))
                    await asyncio.sleep(SAMPLE_SECONDS)

            watcher = asyncio.create_task(watch())
            answering = time.perf_counter()
            try:
                async with _client(url, concurrency) as client:
                    statuses = await _answer_all(client, users, concurrency)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            answered_in = time.perf_counter() - answering
            peak = figures.peak()
            _serve.say(
                f"peak: RSS {peak.rss_kib:,} KiB, {peak.fds} fds; statuses {statuses}; waiting {settle:g} s idle"
            )
            after = await _settle(pid, settle)
        released = [line.split("memory released, ")[1] for line in _log_lines(Path(tmp)) if "memory released" in line]

    growth = (after.rss_kib - start.rss_kib) / start.rss_kib
    print(f"{users:,} users × 1 question through `serve` ({concurrency} at a time, {answered_in:,.0f} s)")
    print(f"{'':<22}{'RSS (KiB)':>12}{'open fds':>10}")
    for name, sample in (("boot", boot), ("start (warm, idle)", start), ("peak", peak), ("after idle", after)):
        print(f"{name:<22}{sample.rss_kib:>12,}{sample.fds:>10}")
    for line in released:
        print(f"the service released memory once quiet: {line}")
    verdict = "within" if growth <= 0.20 else "NOT within"
    print(f"after idle vs start: RSS {growth:+.1%} ({verdict} the 20% goal), fds {after.fds - start.fds:+d}")
    if as_json:
        _serve.print_json(
            {
                "users": users,
                "concurrency": concurrency,
                "statuses": statuses,
                "rss_kib_boot": boot.rss_kib,
                "rss_kib_start": start.rss_kib,
                "rss_kib_peak": peak.rss_kib,
                "rss_kib_after_idle": after.rss_kib,
                "rss_growth_after_idle": round(growth, 4),
                "fds_boot": boot.fds,
                "fds_start": start.fds,
                "fds_peak": peak.fds,
                "fds_after_idle": after.fds,
                "service_releases": released,
                "answer_seconds": round(answered_in, 1),
                "seconds": round(time.perf_counter() - began, 1),
            }
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="distinct users, one question each (default 10000)")
    parser.add_argument("--concurrency", type=int, default=32, help="questions in flight at once (default 32)")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="the service's MCP session idle time and identity TTL (default 5, so expiry happens within the run)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=20.0,
        help="seconds to wait idle before reading the process at start and after (default 20)",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        parser.exit(2, "bench/memory.py reads /proc: it runs on Linux only\n")
    asyncio.run(main(args.users, args.concurrency, args.idle_seconds, args.settle, as_json=args.json))
