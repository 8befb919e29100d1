"""Benchmark of the agent: what one answer costs through `Bridge` with the `claude` engine, model and topic pinned
or not, next to a bare `anthropic` SDK stream on the same fake in the same run.

    .venv/bin/python bench/agent.py [--rounds 5] [--users alice,bob] [--min-cacheable-tokens 1024] [--json]

Why: pinning `OMNI_MODEL_ID` + `OMNI_TOPIC_NAME` hides the selector tools so that an answer needs fewer LLM
round trips; without them, the bridge's auto-pinning rules (`omni_bridge.tools._auto_pin`: a user's only model
pinned from code, the topic picked from code in the query's own turn) should keep it at 3 at most. Prompt
caching should make most input tokens cache reads. This shows by how much, and what the bridge itself adds to
each LLM turn.

Ten questions the sandbox understands are asked through `Bridge.ask` in two configurations: model and topic
NOT pinned (the sandbox's users see two models, so only the topic is picked from code), and pinned. Claude is
the `FakeAnthropic` fake, with two responders, each a function of the request only, so the number of round
trips depends only on what the bridge offers:

- the careful model: call `pickModel` if it is offered and not yet called for this question, then `pickTopic`
  (with the question), then `getData` (with the question and whatever it picked), then answer quoting the rows;
- offered-only (`omni_bridge.testing.offered_tools_in_order`): of the tools offered, the same ones in the same
  order, with the question and nothing it would have to carry over, then answer quoting the last results.

The sandbox (`omni-bridge sandbox`) and the fake (this script with `--serve-fake`) run in separate processes,
so `time.process_time()` of this process is the bridge's own CPU: agent loop, `anthropic` SDK, MCP client,
result shaping; waits cost nothing. Figures printed per configuration:

- LLM round trips per answered question;
- input tokens per answer: all (uncached + cache read + cache write) and uncached alone, as the fake bills
  them (about a quarter of the JSON length; prompt caching simulated from the request's markers, prefixes
  under `--min-cacheable-tokens` never cached, as with the real API);
- cache-read share of the input tokens of each answer's second and later requests (the first request of an
  answer pays for the new question; later ones should mostly read the cache, and write the new tool results);
- bridge CPU per answer and per LLM turn (a turn's tool calls included); as the baseline, the CPU of a bare SDK
  streaming call replaying the very requests the bridge sent (same bodies, same replies); and the difference,
  the bridge's own overhead per turn: event stream, transcript, MCP calls and result shaping.

Figures are steady state: each configuration first answers one question per user that is not counted
(identity resolution, MCP session open, tool listing, first prompt-cache write). The configurations and the
baseline run interleaved, round by round; CPU and wall figures are the best round (the one least disturbed
by other load), token figures the mean over all answers. Loopback only, no real model. With `--json` the last
line printed is one JSON object of the headline figures (`round_trips_unpinned`, `round_trips_pinned`,
`cache_read_share_later_pinned`, `bridge_cpu_ms_per_turn` and `sdk_cpu_ms_per_turn`, both pinned, ...), for a
script to compare from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _serve
import anthropic

from omni_bridge.agent import Bridge
from omni_bridge.agent.events import AssistantMessage, FinalMessage, Usage, UsageReport
from omni_bridge.config import load_settings
from omni_bridge.sandbox import SandboxConfig
from omni_bridge.sandbox._semantic import ECOMMERCE
from omni_bridge.testing import (
    CapturedRequest,
    FakeAnthropic,
    Reply,
    ToolCall,
    offered_tools_in_order,
    text_reply,
    tool_use_reply,
)

QUESTIONS = (
    "total revenue last quarter",
    "revenue by region",
    "top 5 products by revenue in 2025",
    "orders by month in 2026",
    "average order value by category last 6 months",
    "units sold by brand this year",
    "revenue by category in Q3 2025",
    "lowest 3 states by revenue",
    "customers by state since March 2025",
    "orders by quarter in 2025",
)
WARM_UP_QUESTION = "total revenue this year"
ORG_KEY = SandboxConfig().org_key
FAKE_KEY = "bench-key"
CSV_BLOCK = re.compile(r"```csv\n(.*?)```", re.S)
SCRIPT = os.path.abspath(__file__)
RESPONDERS = {"careful": "", "offered-only": "_offered_only"}
"""The fake's responders, chosen by the request's `model` (`bench-<name>`), and their suffix in the JSON keys."""


# --- the careful model (runs in the fake's process) ----------------------------------------------------------


def careful_model(request: CapturedRequest) -> Reply:
    """pickModel, pickTopic, getData (each only if offered and not yet called for this question), then answer."""
    question, since = _current_question(request.messages)
    calls = {
        block["id"]: block["name"]
        for message in since
        if message["role"] == "assistant"
        for block in _blocks(message)
        if block.get("type") == "tool_use"
    }
    results = {
        calls.get(block.get("tool_use_id"), "?"): _result_text(block)
        for message in since
        if message["role"] == "user"
        for block in _blocks(message)
        if block.get("type") == "tool_result"
    }
    offered, called = set(request.tool_names), set(calls.values())
    picked: dict[str, str] = {}
    if model := re.search(r"id ([0-9a-f-]{36})", results.get("pickModel", "")):
        picked["modelId"] = model.group(1)  # the first listed, E-commerce: all ten questions are about sales
    if topic := re.search(r"Best topic for the question: (\w+)", results.get("pickTopic", "")):
        picked["topicName"] = topic.group(1)

    if "pickModel" in offered and "pickModel" not in called:
        return tool_use_reply(ToolCall("pickModel", {}), text="Let me see which data I can query.")
    if "pickTopic" in offered and "pickTopic" not in called:
        arguments = {"prompt": question, **({"modelId": picked["modelId"]} if "modelId" in picked else {})}
        return tool_use_reply(ToolCall("pickTopic", arguments), text="Now the right topic.")
    if "getData" in offered and "getData" not in called:
        return tool_use_reply(ToolCall("getData", {"prompt": question, **picked}), text="Querying Omni.")
    data = results.get("getData", "")
    rows = CSV_BLOCK.search(data)
    link = re.search(r"Open in Omni: (\S+)", data)
    body = f"```csv\n{rows.group(1)}```" if rows else f"Omni could not answer that: {data[:300]}"
    answer = f"Here is {question}, from Omni:\n\n{body}\n"
    answer += f"\nOpen in Omni: {link.group(1)}\n" if link else ""
    answer += "Follow-ups: the same by month | the top 5 only | compare with last year"
    return text_reply(answer)


def _current_question(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user message with text (the question) and the messages after it (this answer's tool work)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        texts = [b["text"] for b in _blocks(message) if b.get("type") == "text"]
        if message["role"] == "user" and texts:
            return " ".join(texts), messages[index + 1 :]
    return "", messages


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def serve_fake(min_cacheable_tokens: int) -> int:
    """The fake's process: print the URL, then answer commands on stdin (`count`, `bodies START STOP`)."""
    offered_only = offered_tools_in_order()

    def respond(request: CapturedRequest) -> Reply:
        return offered_only(request) if request.body.get("model") == "bench-offered-only" else careful_model(request)

    fake = FakeAnthropic(responder=respond, min_cacheable_tokens=min_cacheable_tokens)
    with fake.run_in_thread() as url:
        print(url, flush=True)
        for line in sys.stdin:
            command, *args = line.split()
            if command == "count":
                print(len(fake.requests), flush=True)
            elif command == "bodies":
                start, stop = int(args[0]), int(args[1])
                print(json.dumps([request.body for request in fake.requests[start:stop]]), flush=True)
    return 0


# --- child processes -----------------------------------------------------------------------------------------


class FakeProcess:
    """The fake Messages API in a child process (this script with `--serve-fake`)."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self._process = process
        self.url = url

    async def _command(self, line: str) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()
        return (await asyncio.wait_for(self._process.stdout.readline(), 30)).decode()

    async def request_count(self) -> int:
        return int(await self._command("count"))

    async def request_bodies(self, start: int, stop: int) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = json.loads(await self._command(f"bodies {start} {stop}"))
        return bodies


@contextlib.asynccontextmanager
async def fake_process(min_cacheable_tokens: int) -> AsyncIterator[FakeProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, SCRIPT, "--serve-fake", "--min-cacheable-tokens", str(min_cacheable_tokens),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, limit=1 << 26,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        if not url.startswith("http"):
            raise RuntimeError("the fake exited before it listened")
        yield FakeProcess(process, url)
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- measuring ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    question: str
    user: str
    turns: list[Usage] = field(default_factory=list)
    """The usage of each LLM request of this answer, in order."""
    message: AssistantMessage | None = None

    @property
    def answered(self) -> bool:
        return self.message is not None and self.message.outcome == "completed"

    @property
    def rows(self) -> str | None:
        found = CSV_BLOCK.search(self.message.text) if self.message else None
        return found.group(1) if found else None


@dataclass(frozen=True)
class Round:
    """One pass over the ten questions in one configuration."""

    answers: int
    turns: int
    cpu: float
    """CPU seconds of this process while the bridge answered."""
    wall: float
    sdk_calls: int
    sdk_cpu: float
    """CPU seconds of replaying the round's requests with the bare SDK."""


@dataclass
class Measured:
    name: str
    bridge: Bridge
    answers: list[Answer] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)


async def ask(bridge: Bridge, user: str, question: str) -> Answer:
    answer = Answer(question, user)
    async with contextlib.aclosing(bridge.ask(user=user, question=question, engine="claude")) as events:
        async for event in events:
            if isinstance(event, UsageReport):
                answer.turns.append(event.turn.usage)
            elif isinstance(event, FinalMessage):
                answer.message = event.message
    return answer


class SdkReplay:
    """The baseline: a bare `anthropic` SDK client streaming the bridge's own request bodies to the fake."""

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self.client = client
        self._warm = False

    async def _stream(self, body: dict[str, Any]) -> None:
        params = {key: value for key, value in body.items() if key != "stream"}
        async with self.client.messages.stream(**params) as events:
            async for _ in events:
                pass
            await events.get_final_message()

    async def cpu(self, bodies: list[dict[str, Any]]) -> float:
        """CPU seconds of streaming `bodies`, one after the other."""
        if not self._warm:
            await self._stream(bodies[0])  # connection and the SDK's lazily built parts: not counted
            self._warm = True
        gc.collect()
        started = time.process_time()
        for body in bodies:
            await self._stream(body)
        return time.process_time() - started


async def run_round(measured: Measured, users: Sequence[str], fake: FakeProcess, replay: SdkReplay) -> None:
    plan = [(users[n % len(users)], question) for n, question in enumerate(QUESTIONS)]
    first = await fake.request_count()
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    answers = [await ask(measured.bridge, user, question) for user, question in plan]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    bodies = await fake.request_bodies(first, await fake.request_count())
    sdk_cpu = await replay.cpu(bodies)
    turns = sum(len(answer.turns) for answer in answers)
    measured.answers += answers
    measured.rounds.append(Round(len(answers), turns, cpu, wall, len(bodies), sdk_cpu))


# --- report ------------------------------------------------------------------------------------------------


def _input(usage: Usage) -> int:
    return usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _read_share(usages: Sequence[Usage]) -> float:
    return 100 * sum(u.cache_read_input_tokens for u in usages) / max(1, sum(_input(u) for u in usages))


def _best(measured: Measured, per_round: Callable[[Round], float]) -> float:
    """The lowest value over the rounds: the one least disturbed by other load on the machine."""
    return 1000 * min(per_round(r) for r in measured.rounds)


def report(results: list[Measured]) -> dict[str, float]:
    """Print the table of figures (not pinned, pinned) of one responder; return its headline figures."""
    rows: list[tuple[str, list[float], str]] = []
    answered = [[a for a in m.answers if a.answered] for m in results]
    totals = [[sum(a.turns, Usage()) for a in ans] for ans in answered]

    rows.append(("answered questions", [len(ans) for ans in answered], "n"))
    rows.append(("LLM round trips per answer", [_mean([len(a.turns) for a in ans]) for ans in answered], "f"))
    rows.append(("input tokens per answer, all", [_mean([_input(u) for u in t]) for t in totals], "i"))
    rows.append(("  of which uncached", [_mean([u.input_tokens for u in t]) for t in totals], "i"))
    rows.append(("  of which cache read", [_mean([u.cache_read_input_tokens for u in t]) for t in totals], "i"))
    rows.append(("  of which cache write", [_mean([u.cache_creation_input_tokens for u in t]) for t in totals], "i"))
    rows.append(("output tokens per answer", [_mean([u.output_tokens for u in t]) for t in totals], "i"))
    later = [_read_share([u for a in ans for u in a.turns[1:]]) for ans in answered]
    rows.append(("cache-read share, requests 2+ of an answer", later, "%"))
    first = [_read_share([a.turns[0] for a in ans if a.turns]) for ans in answered]
    rows.append(("cache-read share, first request (reference)", first, "%"))
    rows.append(("wall time per answer (loopback)", [_best(m, lambda r: r.wall / r.answers) for m in results], "ms"))
    rows.append(("bridge CPU per answer", [_best(m, lambda r: r.cpu / r.answers) for m in results], "ms"))
    bridge = [_best(m, lambda r: r.cpu / r.turns) for m in results]
    sdk = [_best(m, lambda r: r.sdk_cpu / r.sdk_calls) for m in results]
    rows.append(("bridge CPU per LLM turn", bridge, "ms"))
    rows.append(("bare SDK stream CPU per call (baseline)", sdk, "ms"))
    rows.append(("bridge overhead per turn (bridge - SDK)", [b - s for b, s in zip(bridge, sdk, strict=True)], "ms"))

    width = max(len(label) for label, _, _ in rows) + 2
    print(f"{'':{width}}" + "".join(f"{m.name:>14}" for m in results) + f"{'change':>10}")
    for label, values, unit in rows:
        change = f"{100 * (values[1] - values[0]) / values[0]:+.0f}%" if values[0] and unit not in ("%", "n") else ""
        print(f"{label:{width}}" + "".join(f"{_fmt(value, unit):>14}" for value in values) + f"{change:>10}")

    pairs = list(zip(results[0].answers, results[1].answers, strict=True))
    same = sum(1 for a, b in pairs if a.rows is not None and a.rows == b.rows)
    print(f"\nanswers with the same rows in both configurations: {same}/{len(pairs)}")
    print(f"CPU and wall figures: the best of {len(results[0].rounds)} rounds; tokens: the mean over all answers.")
    figures = {label: values for label, values, _ in rows}
    return {
        "round_trips_unpinned": round(figures["LLM round trips per answer"][0], 3),
        "round_trips_pinned": round(figures["LLM round trips per answer"][1], 3),
        "cache_read_share_later_unpinned": round(later[0] / 100, 4),
        "cache_read_share_later_pinned": round(later[1] / 100, 4),
        "bridge_cpu_ms_per_turn_unpinned": round(bridge[0], 3),
        "bridge_cpu_ms_per_turn": round(bridge[1], 3),
        "sdk_cpu_ms_per_turn": round(sdk[1], 3),
        "answers_with_same_rows": same,
        "answers_compared": len(pairs),
    }


def _fmt(value: float, unit: str) -> str:
    if unit == "n":
        return f"{value:.0f}"
    if unit == "i":
        return f"{value:,.0f}"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.2f}"


async def main(args: argparse.Namespace) -> None:
    users = [user.strip() for user in args.users.split(",") if user.strip()]
    async with contextlib.AsyncExitStack() as stack:
        logs = stack.enter_context(tempfile.TemporaryDirectory(prefix="omni-bridge-bench-agent-"))
        sandbox_url = await stack.enter_async_context(_serve.sandbox(Path(logs)))
        fake = await stack.enter_async_context(fake_process(args.min_cacheable_tokens))
        print(
            f"omni-bridge agent bench: {len(QUESTIONS)} questions x {args.rounds} rounds, users {', '.join(users)}; "
            f"prompts under {args.min_cacheable_tokens} tokens are not cached; "
            f"sandbox and fake Messages API in separate processes; {os.cpu_count()} cores"
        )
        common: dict[str, Any] = {
            "omni_base_url": sandbox_url,
            "omni_api_key": ORG_KEY,
            "anthropic_api_key": FAKE_KEY,
            "anthropic_base_url": fake.url,
            "bridge_engine": "claude",
        }
        pins: dict[str, dict[str, Any]] = {
            "not pinned": {"omni_model_id": None, "omni_topic_name": None},
            "pinned": {"omni_model_id": ECOMMERCE.id, "omni_topic_name": "order_items"},
        }
        results: list[Measured] = []
        for responder in RESPONDERS:
            for name, pinned in pins.items():
                settings = load_settings(None, **common, **pinned, anthropic_model=f"bench-{responder}")
                measured = Measured(name, await stack.enter_async_context(Bridge(settings)))
                for user in users:  # not counted: resolve the user, open the session, list tools, first cache write
                    await ask(measured.bridge, user, WARM_UP_QUESTION)
                results.append(measured)
        client = await stack.enter_async_context(
            anthropic.AsyncAnthropic(api_key=FAKE_KEY, base_url=fake.url, max_retries=0)
        )
        replay = SdkReplay(client)
        for _ in range(args.rounds):  # interleaved, so that drift in the machine's load hits both alike
            for measured in results:
                await run_round(measured, users, fake, replay)
        figures: dict[str, float] = {}
        for index, (responder, suffix) in enumerate(RESPONDERS.items()):
            print(f"\n{responder} responder")
            pair = results[2 * index : 2 * index + 2]
            figures.update({key + suffix: value for key, value in report(pair).items()})
    if args.json:
        print(json.dumps(figures))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the ten questions (default 5)")
    parser.add_argument("--users", default="alice,bob", help="end users asking, in turn (default alice,bob)")
    parser.add_argument(
        "--min-cacheable-tokens",
        type=int,
        default=1024,
        help="shortest prompt prefix the fake caches (default 1024, the API's minimum for Sonnet models)",
    )
    parser.add_argument("--json", action="store_true", help="print the headline figures as one JSON object, last")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)  # the fake's child process
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_fake:
        sys.exit(serve_fake(arguments.min_cacheable_tokens))
    asyncio.run(main(arguments))
