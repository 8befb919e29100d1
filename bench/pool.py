"""Benchmark of the client layer: the toolset and session pool against the raw `mcp` client, same sandbox, same run.

    .venv/bin/python bench/pool.py [--calls 2000] [--identities 200[,10000]] [--protocol auto] [--json]

The sandbox runs in a separate process (`omni-bridge sandbox`), so the client's CPU time and memory are the
bridge's own. Figures printed:

- per-call latency, median and p99, of `pickModel` (a tool that does no query work, so the client's share
  shows) through `Toolset.call` (pool + result shaping) vs `mcp.Client.call_tool` on one open session;
- cold open (resolve the user + open a session + list tools + first call) vs a warm call, and how many
  handshakes (`initialize` / `server/discover`) the sandbox saw during the warm calls (target: none);
- client RSS per pooled session with `--identities` sessions open, for each count given (target: 40 KiB);
- throughput of 50 identities x 20 calls through the pool, next to 50 raw clients doing the same.

With `--json` the last line is one JSON object: `overhead_median_ratio` and `overhead_p99_ratio` (toolset / raw),
`rss_kib_per_session` (the first `--identities` count), `rss_kib_per_session_<n>` for every count, and
`warm_handshakes`, among others. Progress (creating thousands of users takes a while) goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
from _serve import percentile, print_json, rss_kib, sandbox, say
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from omni_bridge.agent import IdentityResolver
from omni_bridge.sandbox import MCP_PATH, SandboxConfig
from omni_bridge.tools import (
    MemoryArtifactStore,
    OmniRestClient,
    SessionKey,
    SessionPool,
    Toolset,
    mcp_headers,
    shared_ssl_context,
)

ORG_KEY = SandboxConfig().org_key
REGIONS = ("West", "East", "Central", "South")


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def handshakes(http: httpx2.AsyncClient) -> int:
    stats = (await http.get("/sandbox/stats", headers={"Authorization": f"Bearer {ORG_KEY}"})).json()
    return int(sum(stats["sessionsOpened"].values()))


async def in_batches(items: list[Any], work: Callable[[int, Any], Awaitable[Any]], what: str) -> list[Any]:
    """`work(n, item)` for every item, 20 at a time, results in order; progress on stderr for long runs."""
    done: list[Any] = []
    for start in range(0, len(items), 20):
        batch = items[start : start + 20]
        done += await asyncio.gather(*[work(start + n, item) for n, item in enumerate(batch)])
        if len(items) > 1000 and (len(done) % 1000 < 20 or len(done) == len(items)):
            say(f"  {what}: {len(done)}/{len(items)}")
    return done


async def make_users(rest: OmniRestClient, count: int) -> list[str]:
    external_ids = [f"bench-{n:05d}" for n in range(count)]

    async def make(n: int, external_id: str) -> None:
        await rest.generate_session(external_id, f"Bench {n}", user_attributes={"region": REGIONS[n % 4]})

    await in_batches(external_ids, make, "embed users created")
    return external_ids


def raw_client(base: str, user_id: str, mode: str) -> Client:
    http = httpx2.AsyncClient(
        headers=mcp_headers(ORG_KEY, user_id=user_id), verify=shared_ssl_context(), timeout=httpx2.Timeout(30, read=150)
    )
    return Client(streamable_http_client(base + MCP_PATH, http_client=http), mode=mode)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="omni-bridge-bench-pool-") as logs:
        async with sandbox(Path(logs), job_step_seconds=0.05) as base:
            await measure(args, base)


async def measure(args: argparse.Namespace, base: str) -> None:
    """Every figure, against the sandbox at `base`; printed as a table, then (`--json`) as one object."""
    mode = {"modern": "2026-07-28"}.get(args.protocol, args.protocol)
    figures: dict[str, float] = {}
    async with httpx2.AsyncClient(base_url=base) as admin:
        print(f"sandbox {base} (separate process); protocol {args.protocol}; {os.cpu_count()} cores")
        async with OmniRestClient(base, ORG_KEY) as rest:
            users = await make_users(rest, max(*args.identities, 50) + 20)
            resolver = IdentityResolver(rest, server=base, upsert=False)

            async def resolve(_: int, external_id: str) -> str:
                return (await resolver.resolve(external_id)).user_id

            ids = await in_batches(users, resolve, "users resolved")

            # 1. latency: toolset vs raw client, on one warm session each, interleaved in blocks
            async with SessionPool(api_key=ORG_KEY, protocol=args.protocol) as pool:
                toolset = Toolset(pool, SessionKey(base + MCP_PATH, ids[0]), artifacts=MemoryArtifactStore())
                async with raw_client(base, ids[0], mode) as raw:
                    await raw.list_tools()
                    await toolset.definitions()
                    raw_ms: list[float] = []
                    bridge_ms: list[float] = []
                    blocks = max(8, args.calls // 100)  # short blocks: noise from the machine hits both sides alike
                    for _ in range(blocks):
                        raw_ms += await timed(lambda: raw.call_tool("pickModel", {}), args.calls // blocks)
                        bridge_ms += await timed(lambda: toolset.call("pickModel", {}), args.calls // blocks)
                raw_median, bridge_median = statistics.median(raw_ms), statistics.median(bridge_ms)
                print("\nper-call latency of pickModel (ms)          median     p99")
                print(f"  raw mcp Client, one open session      {raw_median:8.2f} {percentile(raw_ms, 0.99):8.2f}")
                print(
                    f"  Toolset.call (pool + shaping)         {bridge_median:8.2f} {percentile(bridge_ms, 0.99):8.2f}"
                )
                raw_p99, bridge_p99 = percentile(raw_ms, 0.99), percentile(bridge_ms, 0.99)
                median_ratio, p99_ratio = bridge_median / raw_median, bridge_p99 / raw_p99
                print(f"  toolset / raw                         {median_ratio:8.3f} {p99_ratio:8.3f}")
                figures |= {
                    "raw_call_median_ms": raw_median,
                    "raw_call_p99_ms": raw_p99,
                    "toolset_call_median_ms": bridge_median,
                    "toolset_call_p99_ms": bridge_p99,
                    "overhead_median_pct": 100 * (bridge_median / raw_median - 1),
                    "overhead_median_ratio": median_ratio,
                    "overhead_p99_ratio": p99_ratio,
                }

                # 2. cold open vs warm call
                cold, warm = [], []
                for external_id in users[-20:]:
                    resolver.invalidate(external_id)
                    started = time.perf_counter()
                    identity = await resolver.resolve(external_id)
                    key = SessionKey(base + MCP_PATH, identity.user_id)
                    await pool.list_tools(key)
                    await pool.call_tool(key, "pickModel", {})
                    cold.append((time.perf_counter() - started) * 1000)
                    warm += await timed(lambda key=key: pool.call_tool(key, "pickModel", {}), 10)  # type: ignore[misc]
                before = await handshakes(admin)
                keys = [SessionKey(base + MCP_PATH, i) for i in ids[-20:]]
                for key in keys:
                    await pool.call_tool(key, "pickModel", {})
                warm_handshakes = await handshakes(admin) - before
                print("\ncold open vs warm call (ms)                 median")
                print(f"  resolve + open + list + first call    {statistics.median(cold):8.2f}")
                print(f"  warm call                             {statistics.median(warm):8.2f}")
                print(f"  handshakes during {len(keys)} warm calls         {warm_handshakes:5d}")
                figures |= {
                    "cold_open_median_ms": statistics.median(cold),
                    "warm_call_median_ms": statistics.median(warm),
                    "warm_handshakes": warm_handshakes,
                }

        # 3. RSS per pooled session, for each count of identities. Each count gets a pool of its own, and every
        # pool stays open until all are measured: memory a closed pool freed would be reused by the next one and
        # flatter its figure.
        print("\nclient RSS per pooled session                KiB")
        async with contextlib.AsyncExitStack() as pools:
            first_pool: SessionPool | None = None
            fifty: list[SessionKey] = []
            for n, count in enumerate(args.identities):
                pool = await pools.enter_async_context(
                    SessionPool(api_key=ORG_KEY, protocol=args.protocol, max_sessions=count)
                )
                keys = [SessionKey(base + MCP_PATH, i) for i in ids[:count]]
                await pool.call_tool(keys[0], "pickModel", {})
                before_kib = rss_kib(os.getpid())

                for opened, key in enumerate(keys[1:], start=2):  # one at a time: no transient peak in the figure
                    await pool.call_tool(key, "pickModel", {})
                    if count > 1000 and opened % 1000 == 0:
                        say(f"  sessions opened: {opened}/{count}")
                per_session = (rss_kib(os.getpid()) - before_kib) / (len(keys) - 1)
                print(f"  {len(keys):6d} sessions open                  {per_session:8.1f}")
                figures[f"rss_kib_per_session_{count}"] = per_session
                if n == 0:
                    figures["rss_kib_per_session"] = figures["rss_per_session_kib"] = per_session
                    first_pool, fifty = pool, keys[:50]

            # 4. throughput: 50 identities x 20 calls (after the RSS figures: the memory its burst frees would be
            # reused by the sessions opened next)
            assert first_pool is not None
            started = time.perf_counter()
            await asyncio.gather(*[first_pool.call_tool(k, "pickModel", {}) for k in fifty for _ in range(20)])
            pooled = 1000 / (time.perf_counter() - started)

        started = time.perf_counter()

        async def raw_user(user_id: str) -> None:
            async with raw_client(base, user_id, mode) as raw:
                await asyncio.gather(*[raw.call_tool("pickModel", {}) for _ in range(20)])

        await asyncio.gather(*[raw_user(i) for i in ids[:50]])
        raw_rate = 1000 / (time.perf_counter() - started)
        print("\nthroughput, 50 identities x 20 calls        calls/s")
        print(f"  SessionPool (sessions already open)   {pooled:8.0f}")
        print(f"  raw: 50 clients, each opened for it   {raw_rate:8.0f}")
        figures |= {"pooled_calls_per_s": pooled, "raw_calls_per_s": raw_rate}
    if args.json:
        print_json(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="latency samples per side (default 2000)")
    parser.add_argument(
        "--identities",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[200],
        help="sessions open for the RSS figure; several counts comma-separated, e.g. 200,10000 (default 200)",
    )
    parser.add_argument("--protocol", choices=["auto", "legacy", "modern"], default="auto")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    asyncio.run(main(parser.parse_args()))
