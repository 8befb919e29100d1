"""Soak under faults: N turns across many users through two `serve` workers on PostgreSQL while Omni misbehaves.

    .venv/bin/python bench/soak.py [--turns 400] [--users 24] [--concurrency 12] [--max-seconds 300] [--json]

Why: under load and faults a service can lose a message, leave a response `running` for good, or hand one
user's rows to another, and none of that shows in a test that asks one question at a time. This runs the real
thing, loopback only, bounded in count and time:

- the Omni sandbox in its own process (`omni-bridge sandbox`), so both workers share one Omni;
- the scripted fake Messages API (`omni_bridge.testing.FakeAnthropic`) in this process: the `claude` engine
  calls `getData` over MCP on every turn (the calls the faults hit), then answers quoting the tool result and
  the question's tag, so an answer shows whose question it answers and which rows it saw;
- two `omni-bridge serve` workers (subprocesses) on one fresh PostgreSQL schema, lease `--lease-seconds`;
- `--users` end users, each with one region (row-level security at Omni), asking in turn about revenue by
  region, a few turns per thread, their turns spread over both workers, at most `--concurrency` at once.

The faults come in windows, set off by progress (turns done or time spent, whichever is further along):
from 20% to 45% the sandbox answers `--error-rate` of MCP and REST requests with 429 or 503 (alternating each
second) and drops every MCP session every 2 s; at 55% one worker is SIGKILLed and restarted on its port
after `--down-seconds`. A client acts as a chatbot backend behind a load balancer would: a refused connection
goes to the other worker, a 429 waits `Retry-After`, a 409 (the thread still busy) waits for the thread's
response, then posts again.

After the turns, with both workers up, it waits for the leases to run out and audits the store through the
API. Printed (and with `--json`, one JSON object last):

- **failed turns**: no answer (failed response, client gave up, never accepted), split into those that
  overlapped a fault window or the kill window (plus grace) and those outside any (goal: 0 outside);
- **lost messages**: a user message with no assistant message whose response is not failed with a reason,
  an accepted message missing from its thread, or a response that vanished (goal: 0);
- **stuck responses**: `queued` or `running` after the leases ran out, or `running` with its final
  message written (goal: 0);
- **cross-user rows**: an answer naming a region not its user's, a message tagged with another user, another
  user's thread in a user's list or readable by them (goal: 0);
- p50/p99 turn latency, answers without data (a turn that succeeded though its tool call failed), and the
  sandbox's counters.

Everything it starts (sandbox, workers, schema) is ended on exit, Ctrl-C or `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _serve
import httpx2

from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ReplyText, ToolCall, tool_then_answer

REGIONS = ("West", "East", "Central", "South")
TERMINAL = ("succeeded", "failed", "canceled")
SERVICE_KEY = "soak-service-key-" + secrets.token_hex(8)
QUESTION = "What is our revenue by region?"
_TAG = re.compile(r"\[(soak-u\d+) t(\d+)\]")
_REGION_WORD = re.compile(r"\b(" + "|".join(REGIONS) + r")\b")
POLL_SECONDS = 0.2
DRAIN_SECONDS = 15.0
"""After the load's deadline, turns in flight get this long to end before they are cut."""
AUDIT_SECONDS = 20.0
"""Kept back for the audit."""
FAULT_GRACE_SECONDS = 5.0
"""A turn that ends this long after a fault window still counts as inside it (retries and backoff run on)."""


# --- the fake model --------------------------------------------------------------------------------------


def _question_tag(request: CapturedRequest) -> str:
    """The `[soak-uNN tM]` tag of the question being answered (the last user message without tool results)."""
    for message in reversed(request.messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            continue
        found = _TAG.search(json.dumps(content))
        return found.group(0) if found else "[untagged]"
    return "[untagged]"


def responder(delay_seconds: float) -> Callable[[CapturedRequest], Reply]:
    """getData once, then an answer naming the question's tag and quoting the tool result (the rows it saw)."""
    plan = tool_then_answer(ToolCall("getData", {"prompt": "revenue by region"}))

    def respond(request: CapturedRequest) -> Reply:
        reply = plan(request)
        if reply.effective_stop_reason == "tool_use":
            return dataclasses.replace(reply, delay_seconds=delay_seconds)
        text = f"Answer for {_question_tag(request)}:\n" + "\n".join(request.tool_result_texts)
        return dataclasses.replace(reply, content=(ReplyText(text),), delay_seconds=delay_seconds)

    return respond


# --- processes ------------------------------------------------------------------------------------------


@dataclass
class Worker:
    proc: _serve.Child
    url: str = ""
    up: bool = False
    client: httpx2.AsyncClient | None = None

    async def launch(self, port: int) -> None:
        self.proc.argv[-1] = str(port)
        self.proc.start()
        self.url = (await self.proc.banner(_serve.LISTENING)).group(1)
        if self.client is not None:
            await self.client.aclose()
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=32)
        self.client = httpx2.AsyncClient(base_url=self.url, timeout=httpx2.Timeout(15, connect=2), limits=limits)
        self.up = True

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def postgres_schema(base_url: str, *, keep: bool) -> Iterator[str]:
    """A fresh schema for this run (the store creates its tables there), dropped with everything in it after
    unless `keep` (to look into what the run left)."""
    import psycopg
    from psycopg import sql

    name = f"soak_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{name}"
    finally:
        if keep:
            print(f"PostgreSQL schema {name} kept", file=sys.stderr)
        else:
            with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# --- the record of a run --------------------------------------------------------------------------------


@dataclass
class Turn:
    user: str
    index: int
    started: float = 0.0
    ended: float = 0.0
    outcome: str = "not_run"
    """succeeded | failed:<error type> | canceled | vanished | client_timeout | not_accepted:<why> | post_ambiguous
    | not_run (the load's time was up before it) | cut_by_deadline (in flight when the drain ended)"""
    thread_id: str | None = None
    response_id: str | None = None
    user_message_id: str | None = None
    worker: str = "?"
    """The worker that accepted the question."""
    has_data: bool = False

    @property
    def tag(self) -> str:
        return f"[{self.user} t{self.index}]"


@dataclass
class Windows:
    """When faults lasted, in seconds since the start of the load."""

    faults: list[list[float]] = field(default_factory=list)
    kills: list[list[float]] = field(default_factory=list)

    def which(self, turn: Turn, *, kill_tail: float) -> str | None:
        def overlaps(spans: list[list[float]], tail: float) -> bool:
            return any(turn.started <= end + tail and turn.ended >= start for start, end in spans)

        if overlaps(self.kills, kill_tail):
            return "kill"
        if overlaps(self.faults, FAULT_GRACE_SECONDS):
            return "fault"
        return None


@dataclass
class Audit:
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    cross_user: list[str] = field(default_factory=list)
    threads: int = 0
    messages: int = 0
    unknown_threads: int = 0


# --- the soak -------------------------------------------------------------------------------------------


class Soak:
    """The load (users asking in turn, as a backend behind a load balancer), the fault schedule, the audit."""

    def __init__(self, args: argparse.Namespace, workers: list[Worker], sandbox_url: str, org_key: str) -> None:
        self.args = args
        self.workers = workers
        self.sandbox = httpx2.AsyncClient(
            base_url=sandbox_url, headers={"Authorization": f"Bearer {org_key}"}, timeout=10
        )
        self.users = [f"soak-u{i:02d}" for i in range(args.users)]
        self.region = {user: REGIONS[i % len(REGIONS)] for i, user in enumerate(self.users)}
        self.turns = [Turn(self.users[i % args.users], i) for i in range(args.turns)]
        self.threads_of: dict[str, list[str]] = {user: [] for user in self.users}
        self.windows = Windows()
        self.bridge_429 = 0
        self.rerouted = 0
        self.began = time.monotonic()
        self.load_deadline = args.deadline - reserve_seconds(args)
        self.stopping = False
        self._next_worker = 0
        self.sample_answer = ""
        self.unclean_exits: list[str] = []
        self.restarted_elsewhere = False

    def now(self) -> float:
        return time.monotonic() - self.began

    def done(self) -> int:
        return sum(1 for t in self.turns if t.ended)

    def progress(self) -> float:
        load: float = max(1.0, self.load_deadline - self.began)
        return max(self.done() / max(1, len(self.turns)), self.now() / load)

    # --- HTTP to the workers, as through a load balancer ---

    def _order(self, prefer: int) -> list[Worker]:
        first, second = self.workers[prefer % 2], self.workers[(prefer + 1) % 2]
        return sorted([first, second], key=lambda w: not w.up)

    def _served_by(self, answer: httpx2.Response) -> str:
        return next((w.proc.name for w in self.workers if w.url and answer.url.port == w.port), "?")

    async def call(
        self, method: str, path: str, user: str, *, prefer: int, body: Any = None, params: Any = None
    ) -> httpx2.Response:
        """One request on the preferred worker, on the other when the connection is refused.

        Raises:
            httpx2.ConnectError: neither worker took the connection.
            httpx2.TransportError: the request was sent and its answer lost (it may have been served).
        """
        headers = {"Authorization": f"Bearer {SERVICE_KEY}", "X-Bridge-User": user}
        refused: Exception | None = None
        for worker in self._order(prefer):
            if worker.client is None:
                continue
            try:
                answer = await worker.client.request(method, path, headers=headers, json=body, params=params)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                refused = exc
                continue
            self.rerouted += worker is not self.workers[prefer % 2]
            return answer
        raise httpx2.ConnectError(f"no worker took the connection: {refused}")

    # --- one turn ---

    async def run_user(self, user: str, semaphore: asyncio.Semaphore) -> None:
        thread: str | None = None
        in_thread = 0
        for turn in (t for t in self.turns if t.user == user):
            if self.stopping or time.monotonic() > self.load_deadline:
                continue
            if thread is None or in_thread >= self.args.turns_per_thread:
                thread, in_thread = None, 0
            async with semaphore:
                if self.stopping or time.monotonic() > self.load_deadline:
                    continue
                thread = await self.run_turn(turn, thread)
            in_thread += 1

    async def run_turn(self, turn: Turn, thread: str | None) -> str | None:
        """Ask, then poll until the response ends; returns the thread to ask in next (None: start a new one)."""
        turn.started = self.now()
        prefer = self._next_worker = self._next_worker + 1
        deadline = time.monotonic() + self.args.turn_timeout
        text = f"{turn.tag} {QUESTION}"
        try:
            if not await self._post(turn, thread, text, prefer, deadline):
                return turn.thread_id
            await self._follow(turn, prefer + 1, deadline)
        except asyncio.CancelledError:
            turn.outcome = "cut_by_deadline"  # the run's own time ran out: not the service's failure
            raise
        finally:
            turn.ended = self.now()
        return turn.thread_id

    async def _post(self, turn: Turn, thread: str | None, text: str, prefer: int, deadline: float) -> bool:
        if thread is None:
            path = "/v1/threads"
            body: dict[str, Any] = {
                "message": {"text": text},
                "user_profile": {"name": turn.user, "user_attributes": {"region": self.region[turn.user]}},
            }
        else:
            path, body = f"/v1/threads/{thread}/messages", {"message": {"text": text}}
        turn.thread_id = thread
        refused = 0
        while True:
            if time.monotonic() > deadline:
                turn.outcome = f"not_accepted:timeout{f'_after_{refused}' if refused else ''}"
                return False
            try:
                answer = await self.call("POST", path, turn.user, prefer=prefer, body=body)
            except httpx2.ConnectError:
                await asyncio.sleep(0.5)
                continue
            except httpx2.TransportError:
                turn.outcome = "post_ambiguous"  # it may have been stored: the audit finds it if so
                return False
            if answer.status_code == 201:
                data = answer.json()["data"]
                turn.thread_id = data.get("thread_id", thread)
                turn.response_id, turn.user_message_id = data["response_id"], data["user_message_id"]
                turn.worker = self._served_by(answer)
                if thread is None:
                    self.threads_of[turn.user].append(turn.thread_id or "")
                return True
            refused = answer.status_code
            if answer.status_code == 429:
                self.bridge_429 += 1
                await asyncio.sleep(min(5.0, float(answer.headers.get("retry-after", "1"))))
            elif answer.status_code == 409 and thread is not None:
                await self._wait_thread_idle(turn.user, thread, prefer, deadline)
            elif answer.status_code == 503:
                prefer += 1
                await asyncio.sleep(0.5)
            else:
                turn.outcome = f"not_accepted:{answer.status_code}"
                return False

    async def _wait_thread_idle(self, user: str, thread: str, prefer: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx2.TransportError):
                answer = await self.call("GET", f"/v1/threads/{thread}/response", user, prefer=prefer)
                if answer.status_code != 200 or answer.json()["data"]["status"] in TERMINAL:
                    return
            await asyncio.sleep(POLL_SECONDS)

    async def _follow(self, turn: Turn, prefer: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                answer = await self.call("GET", f"/v1/responses/{turn.response_id}", turn.user, prefer=prefer)
            except httpx2.TransportError:
                prefer += 1
                await asyncio.sleep(POLL_SECONDS)
                continue
            if answer.status_code == 404:
                turn.outcome = "vanished"
                return
            if answer.status_code == 200:
                response = answer.json()["data"]
                if response["status"] in TERMINAL:
                    self._record_end(turn, response)
                    return
            await asyncio.sleep(POLL_SECONDS)
        turn.outcome = "client_timeout"

    def _record_end(self, turn: Turn, response: dict[str, Any]) -> None:
        status = response["status"]
        if status == "succeeded":
            turn.outcome = "succeeded"
        elif status == "failed":
            turn.outcome = f"failed:{(response.get('error') or {}).get('type', 'no_reason')}"
        else:
            turn.outcome = status
        text = _strings(response.get("parts"))
        turn.has_data = self.region[turn.user] in _REGION_WORD.findall(text)
        if turn.has_data and not self.sample_answer:
            self.sample_answer = text[:400]

    # --- faults ---

    async def control(self, path: str, body: Any = None) -> Any:
        answer = await self.sandbox.post(path, json=body)
        answer.raise_for_status()
        return answer.json()

    async def _until(self, progress: float) -> bool:
        while self.progress() < progress:
            if self.stopping:
                return False
            await asyncio.sleep(0.2)
        return not self.stopping

    async def faults(self) -> None:
        """The fault windows: 429/503 and session drops, then one worker SIGKILLed and restarted."""
        if not await self._until(0.20):
            return
        window = [self.now(), self.now()]
        self.windows.faults.append(window)
        await self.control("/sandbox/faults", {"error_rate": self.args.error_rate, "error_status": 429})
        await self.control("/sandbox/drop-sessions")
        ticks = 0
        try:
            while self.progress() < 0.45 and not self.stopping:
                await asyncio.sleep(1.0)
                ticks += 1
                await self.control("/sandbox/faults", {"error_status": 503 if ticks % 2 else 429})
                if ticks % 2 == 0:
                    await self.control("/sandbox/drop-sessions")
        finally:
            await self.control("/sandbox/faults", {"error_rate": 0.0})
            window[1] = self.now()
        if not await self._until(0.55):
            return
        victim = self.workers[1]
        port = victim.port
        victim.up = False
        victim.proc.kill()  # SIGKILL: no shutdown, its runs keep their leases until the reaper takes them
        span = [self.now(), self.now()]
        self.windows.kills.append(span)
        await asyncio.sleep(self.args.down_seconds)
        try:
            await victim.launch(port)
        except RuntimeError:  # an outgoing connection took the port meanwhile: the balancer learns the new one
            self.restarted_elsewhere = True
            await victim.launch(0)
        span[1] = self.now()

    # --- the end: settle, then audit through the API ---

    async def settle(self) -> None:
        """Wait (bounded) until every accepted response has ended: the reaper needs a lease and a sweep."""
        limit = time.monotonic() + settle_seconds(self.args) - self.args.lease_seconds / 3 - 0.5
        pending = [t for t in self.turns if t.response_id]
        while time.monotonic() < limit:
            open_ = 0
            for turn in pending:
                with contextlib.suppress(httpx2.TransportError):
                    answer = await self.call("GET", f"/v1/responses/{turn.response_id}", turn.user, prefer=0)
                    if answer.status_code == 200 and answer.json()["data"]["status"] not in TERMINAL:
                        open_ += 1
            if not open_:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(self.args.lease_seconds / 3 + 0.5)  # one more reaper sweep for unknown ones

    async def audit(self) -> Audit:
        audit = Audit()
        owner_of = {tid: user for user, tids in self.threads_of.items() for tid in tids}
        known = {t.user_message_id: t for t in self.turns if t.user_message_id}
        for n, user in enumerate(self.users):
            threads = await self._list_threads(user)
            audit.threads += len(threads)
            for thread in threads:
                tid = thread["id"]
                if owner_of.get(tid, user) != user:
                    audit.cross_user.append(f"{user} lists {owner_of[tid]}'s thread {tid}")
                if tid not in owner_of:
                    audit.unknown_threads += 1
                await self._audit_thread(user, thread, known, audit)
            # Another user's thread must not be readable as this user.
            other = self.users[(n + 1) % len(self.users)]
            for tid in self.threads_of[other][:1] if other != user else []:
                answer = await self.call("GET", f"/v1/threads/{tid}/messages", user, prefer=n)
                if answer.status_code != 404:
                    audit.cross_user.append(f"{user} read {other}'s thread {tid}: HTTP {answer.status_code}")
        return audit

    async def _list_threads(self, user: str) -> list[dict[str, Any]]:
        threads: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            answer = await self.call("GET", "/v1/threads", user, prefer=0, params=params)
            answer.raise_for_status()
            page = answer.json()
            threads += page["data"]
            before = (page.get("metadata") or {}).get("next_before")
            if not before:
                return threads
            params = {"limit": 100, "before": before}

    async def _audit_thread(self, user: str, thread: dict[str, Any], known: dict[str, Turn], audit: Audit) -> None:
        tid = thread["id"]
        answer = await self.call("GET", f"/v1/threads/{tid}/messages", user, prefer=0)
        answer.raise_for_status()
        messages: list[dict[str, Any]] = answer.json()["data"]
        audit.messages += len(messages)
        answered = {m["response_id"] for m in messages if m["role"] == "assistant"}
        for i, message in enumerate(messages):
            text = _strings(message["parts"])
            for tagged_user, _ in _TAG.findall(text):
                if tagged_user != user:
                    audit.cross_user.append(f"message {message['id']} in {user}'s thread is tagged {tagged_user}")
            foreign = set(_REGION_WORD.findall(text)) - {self.region[user]}
            if message["role"] == "assistant" and foreign:
                audit.cross_user.append(f"answer {message['id']} for {user} ({self.region[user]}) names {foreign}")
            if message["role"] == "user" and message["id"] not in known:
                following = messages[i + 1] if i + 1 < len(messages) else None
                if following is None or following["role"] != "assistant":
                    audit.lost.append(f"user message {message['id']} ({user}) has no answer and no known response")
        ids = {m["id"] for m in messages}
        for turn in (t for t in known.values() if t.thread_id == tid):
            if turn.user_message_id not in ids:
                audit.lost.append(f"accepted message {turn.user_message_id} ({user}) is missing from its thread")
            await self._audit_response(turn, answered, audit)
        if thread.get("current_response_id") and thread["current_response_id"] not in {
            t.response_id for t in known.values()
        }:
            await self._audit_response(
                Turn(user, -1, thread_id=tid, response_id=thread["current_response_id"]), answered, audit
            )

    async def _audit_response(self, turn: Turn, answered: set[str], audit: Audit) -> None:
        answer = await self.call("GET", f"/v1/responses/{turn.response_id}", turn.user, prefer=0)
        if answer.status_code == 404:
            audit.lost.append(f"response {turn.response_id} ({turn.user}) vanished")
            return
        answer.raise_for_status()
        response = answer.json()["data"]
        status = response["status"]
        if status in ("queued", "running"):
            final = " with its final message written" if response.get("message_id") else ""
            seen = f"; turn t{turn.index} began at {turn.started:.1f} s on {turn.worker}, client saw {turn.outcome}"
            row = await asyncio.to_thread(_stored_row, self.args.store_url, turn.response_id or "")
            audit.stuck.append(
                f"response {turn.response_id} ({turn.user}) still {status}{final}{seen if turn.index >= 0 else ''}; "
                f"stored: {row}"
            )
        elif turn.response_id not in answered and not (status != "succeeded" and response.get("error")):
            audit.lost.append(f"response {turn.response_id} ({turn.user}) {status} without an assistant message")


def _stored_row(store_url: str, response_id: str) -> str:
    """What the store holds for a stuck response (worker, lease, times, events), read straight from PostgreSQL."""
    import psycopg

    with psycopg.connect(store_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT worker, lease_expires_at - now(), record->>'started_at', record->>'updated_at', "
            "record->>'message_id', record->>'progress', record->>'cancel_requested', "
            "(SELECT count(*) FROM bridge_response_events e WHERE e.response_id = r.id), "
            "(SELECT string_agg(e.event->>'type', ',' ORDER BY e.seq) FROM bridge_response_events e "
            "WHERE e.response_id = r.id) FROM bridge_responses r WHERE id = %s",
            (response_id,),
        ).fetchone()
    if row is None:
        return "no row"
    names = ("worker", "lease_left", "started_at", "updated_at", "message_id", "progress", "cancel", "events", "types")
    values = [*row[:-1], _runs(str(row[-1] or "").split(","))]
    return ", ".join(f"{name}={value}" for name, value in zip(names, values, strict=True))


def _runs(items: list[str]) -> str:
    """`a,b,b,b,c` as `a b×3 c`."""
    out: list[str] = []
    for item, group in itertools.groupby(items):
        n = len(list(group))
        out.append(f"{item}×{n}" if n > 1 else item)
    return " ".join(out)


def _strings(value: Any) -> str:
    """Every string inside a JSON value, one per line (parts hold text, charts and tables)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_strings(v) for v in value)
    return ""


# --- running it all -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def started(args: argparse.Namespace, logs: Path, store_url: str) -> AsyncIterator[Soak]:
    """The sandbox, the fake model and two workers, up; every process ended on the way out."""
    cli = _serve.CLI
    procs: list[_serve.Child] = []
    argv = [*cli, "sandbox", "--port", "0", "--job-step-seconds", "0.05"]
    sandbox = _serve.Child("sandbox", argv, _serve.child_env(), logs / "sandbox.log")
    procs.append(sandbox)
    fake = FakeAnthropic(responder=responder(args.model_delay))
    workers: list[Worker] = []
    soak: Soak | None = None
    try:
        sandbox.start()
        sandbox_url = (await sandbox.banner(_serve.LISTENING)).group(1)
        org_key = (await sandbox.banner(_serve.ORG_KEY)).group(1)
        with fake.run_in_thread() as fake_url:
            env = {
                "OMNI_BASE_URL": sandbox_url,
                "OMNI_API_KEY": org_key,
                "ANTHROPIC_API_KEY": "soak-fake-anthropic-key",
                "ANTHROPIC_BASE_URL": fake_url,
                "BRIDGE_ENGINE": args.engine,
                "BRIDGE_SERVICE_KEYS": f"soak:{SERVICE_KEY}",
                "BRIDGE_STORE_URL": store_url,
                "BRIDGE_LEASE_SECONDS": str(args.lease_seconds),
                "BRIDGE_LOG_LEVEL": args.worker_log_level,
                "OMNI_REST_REQUESTS_PER_MINUTE": str(args.omni_rest_rpm),
                "OMNI_MCP_PROTOCOL": args.mcp_protocol,
            }
            for name in ("a", "b"):
                data = logs / f"worker-{name}"
                data.mkdir()
                argv = [*cli, "serve", "--worker-id", f"soak-{name}", "--port", "0"]
                proc = _serve.Child(
                    f"worker {name}", argv, _serve.child_env(env | {"BRIDGE_DATA_DIR": str(data)}), logs / f"{name}.log"
                )
                procs.append(proc)
                workers.append(Worker(proc))
            await asyncio.gather(*(w.launch(0) for w in workers))
            soak = Soak(args, workers, sandbox_url, org_key)
            yield soak
    finally:
        for worker in workers:
            if worker.client is not None:
                await worker.client.aclose()
        if soak is not None:
            await soak.sandbox.aclose()
        for proc in reversed(procs):
            proc.stop()


async def soak_run(args: argparse.Namespace, logs: Path, store_url: str) -> dict[str, Any]:
    async with started(args, logs, store_url) as soak:
        soak.began = time.monotonic()
        soak.load_deadline = args.deadline - reserve_seconds(args)
        if soak.load_deadline - soak.began < 5:
            raise SystemExit("--max-seconds leaves no time for the load after starting the processes")
        semaphore = asyncio.Semaphore(args.concurrency)
        faults = asyncio.create_task(soak.faults())
        users = [asyncio.create_task(soak.run_user(user, semaphore)) for user in soak.users]
        try:
            await asyncio.wait(users, timeout=soak.load_deadline + DRAIN_SECONDS - time.monotonic())
            soak.stopping = True
            load_seconds = soak.now()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(args.down_seconds + 60):
                    await faults
        finally:  # the time is up, or Ctrl-C: no task may outlive the clients and processes it uses
            soak.stopping = True
            for task in [*users, faults]:
                task.cancel()
            await asyncio.gather(*users, faults, return_exceptions=True)
        with contextlib.suppress(Exception):
            await soak.control("/sandbox/faults", {"error_rate": 0.0})
        await soak.settle()
        audit = await soak.audit()
        stats = (await soak.sandbox.get("/sandbox/stats")).json()
        for worker in soak.workers:  # a worker that cannot stop is holding a run it cannot end
            if worker.client is not None:
                await worker.client.aclose()
                worker.client = None
        stopped = await asyncio.gather(*(asyncio.to_thread(w.proc.stop) for w in soak.workers))
        soak.unclean_exits = [w.proc.name for w, clean in zip(soak.workers, stopped, strict=True) if not clean]
        return figures(soak, audit, stats, load_seconds, logs)


def figures(soak: Soak, audit: Audit, stats: dict[str, Any], load_seconds: float, logs: Path) -> dict[str, Any]:
    kill_tail = soak.args.lease_seconds * 2 + 2
    ran = [t for t in soak.turns if t.outcome not in ("not_run", "cut_by_deadline")]
    failed = [t for t in ran if t.outcome != "succeeded"]
    where = Counter(soak.windows.which(t, kill_tail=kill_tail) or "outside" for t in failed)
    latencies = sorted(t.ended - t.started for t in ran if t.outcome == "succeeded")
    succeeded = [t for t in ran if t.outcome == "succeeded"]
    log_errors = {path.name: path.read_text(errors="replace").count("Traceback") for path in sorted(logs.glob("*.log"))}
    return {
        "turns_asked": len(soak.turns),
        "turns_run": len(ran),
        "turns_cut_by_deadline": sum(1 for t in soak.turns if t.outcome == "cut_by_deadline"),
        "users": len(soak.users),
        "load_seconds": round(load_seconds, 1),
        "succeeded": len(succeeded),
        "succeeded_without_data": sum(1 for t in succeeded if not t.has_data),
        "without_data_outside_windows": sum(
            1 for t in succeeded if not t.has_data and soak.windows.which(t, kill_tail=kill_tail) is None
        ),
        "failed_turns": len(failed),
        "failed_in_fault_window": where["fault"],
        "failed_in_kill_window": where["kill"],
        "failed_outside_windows": where["outside"],
        "failed_outcomes": dict(Counter(t.outcome for t in failed)),
        "failed_outside_outcomes": dict(
            Counter(t.outcome for t in failed if soak.windows.which(t, kill_tail=kill_tail) is None)
        ),
        "lost_messages": len(audit.lost),
        "stuck_responses": len(audit.stuck),
        "cross_user_rows": len(audit.cross_user),
        "p50_turn_ms": round(_serve.percentile(latencies, 0.50) * 1000) if latencies else None,
        "p99_turn_ms": round(_serve.percentile(latencies, 0.99) * 1000) if latencies else None,
        "threads_audited": audit.threads,
        "messages_audited": audit.messages,
        "unknown_threads": audit.unknown_threads,
        "bridge_429s": soak.bridge_429,
        "rerouted_requests": soak.rerouted,
        "fault_windows_s": [[round(a, 1), round(b, 1)] for a, b in soak.windows.faults],
        "kill_windows_s": [[round(a, 1), round(b, 1)] for a, b in soak.windows.kills],
        "restarted_on_another_port": soak.restarted_elsewhere,
        "sandbox_sessions_dropped": stats.get("counts", {}).get("mcp.sessions_dropped", 0),
        "sandbox_sessions_opened": stats.get("counts", {}).get("mcp.sessions", 0),
        "tracebacks_in_logs": log_errors,
        "workers_killed_after_sigterm": soak.unclean_exits,
        "details": {"lost": audit.lost[:20], "stuck": audit.stuck[:20], "cross_user": audit.cross_user[:20]},
        "sample_answer": soak.sample_answer,
    }


def report(result: dict[str, Any]) -> None:
    rows = [
        ("turns run / asked", f"{result['turns_run']} / {result['turns_asked']} ({result['users']} users)"),
        ("turns cut by --max-seconds", str(result["turns_cut_by_deadline"])),
        ("load time", f"{result['load_seconds']} s"),
        (
            "succeeded (without data: all, outside faults)",
            f"{result['succeeded']} ({result['succeeded_without_data']}, {result['without_data_outside_windows']})",
        ),
        ("failed turns", str(result["failed_turns"])),
        ("  in a 429/503 + drop window", str(result["failed_in_fault_window"])),
        ("  in the kill window", str(result["failed_in_kill_window"])),
        ("  outside any fault (goal 0)", str(result["failed_outside_windows"])),
        ("lost messages (goal 0)", str(result["lost_messages"])),
        ("stuck responses (goal 0)", str(result["stuck_responses"])),
        ("cross-user rows (goal 0)", str(result["cross_user_rows"])),
        ("turn latency p50 / p99", f"{result['p50_turn_ms']} / {result['p99_turn_ms']} ms"),
        ("threads / messages audited", f"{result['threads_audited']} / {result['messages_audited']}"),
        ("bridge 429s, rerouted requests", f"{result['bridge_429s']}, {result['rerouted_requests']}"),
        (
            "MCP sessions opened / dropped",
            f"{result['sandbox_sessions_opened']} / {result['sandbox_sessions_dropped']}",
        ),
        ("fault / kill windows (s)", f"{result['fault_windows_s']} / {result['kill_windows_s']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if result["failed_outcomes"]:
        print(f"failed outcomes: {result['failed_outcomes']}")
    for kind, lines in result["details"].items():
        for line in lines:
            print(f"{kind}: {line}")
    if result["workers_killed_after_sigterm"]:
        grace = f"{_serve.STOP_GRACE_SECONDS:.0f} s"
        print(f"did not exit within {grace} of SIGTERM (killed): {', '.join(result['workers_killed_after_sigterm'])}")
    if any(result["tracebacks_in_logs"].values()):
        print(f"tracebacks in logs: {result['tracebacks_in_logs']}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    keep = Path(tempfile.mkdtemp(prefix="omni-bridge-soak-"))
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        with postgres_schema(args.pg, keep=args.keep_schema) as store_url:
            args.store_url = store_url
            return await soak_run(args, keep, store_url)
    finally:
        if args.keep_logs:
            print(f"logs kept in {keep}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(keep, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=400, help="turns in all (default 400)")
    parser.add_argument("--users", type=int, default=24, help="end users (default 24)")
    parser.add_argument("--concurrency", type=int, default=12, help="turns in flight at most (default 12)")
    parser.add_argument("--turns-per-thread", type=int, default=5, help="turns before a user starts a new thread")
    parser.add_argument("--max-seconds", type=float, default=300, help="the whole run at most (default 300)")
    parser.add_argument("--turn-timeout", type=float, default=60, help="a client gives up on a turn after (60)")
    parser.add_argument("--lease-seconds", type=float, default=3, help="BRIDGE_LEASE_SECONDS of the workers (3)")
    parser.add_argument("--error-rate", type=float, default=0.2, help="share of 429/503 in the fault window (0.2)")
    parser.add_argument("--down-seconds", type=float, default=2, help="how long the killed worker stays down (2)")
    parser.add_argument("--model-delay", type=float, default=0.02, help="fake model's wait per stream frame (s)")
    parser.add_argument("--omni-rest-rpm", type=float, default=600, help="OMNI_REST_REQUESTS_PER_MINUTE (600)")
    parser.add_argument("--engine", choices=("claude", "omni"), default="claude", help="the workers' engine")
    parser.add_argument(
        "--mcp-protocol",
        choices=("legacy", "auto", "modern"),
        default="legacy",
        help="OMNI_MCP_PROTOCOL of the workers (default legacy: 2026-07-28 has no sessions for the sandbox to drop)",
    )
    default_pg = os.environ.get("OMNI_BRIDGE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    parser.add_argument("--pg", default=default_pg, help="PostgreSQL URL (a fresh schema is used, then dropped)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (path on stderr)")
    parser.add_argument(
        "--worker-log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="workers' log"
    )
    parser.add_argument("--keep-schema", action="store_true", help="keep the PostgreSQL schema (name on stderr)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.users < 1 or args.concurrency < 1 or args.turns_per_thread < 1:
        parser.error("--turns, --users, --concurrency and --turns-per-thread must be at least 1")
    if args.max_seconds < reserve_seconds(args) + 20:
        parser.error(f"--max-seconds must leave time for the load: at least {reserve_seconds(args) + 20:.0f}")
    args.deadline = time.monotonic() + args.max_seconds
    return args


def reserve_seconds(args: argparse.Namespace) -> float:
    """What the run keeps back from `--max-seconds` for after the load: the drain, the settle, the audit."""
    return DRAIN_SECONDS + settle_seconds(args) + AUDIT_SECONDS


def settle_seconds(args: argparse.Namespace) -> float:
    """Two leases and a reaper sweep: every response of a dead worker has ended by then."""
    return 2 * float(args.lease_seconds) + 5


if __name__ == "__main__":
    arguments = parse_args()
    try:
        result = asyncio.run(main(arguments))
    except KeyboardInterrupt:
        print("interrupted: the sandbox, the workers and the schema it started are gone", file=sys.stderr)
        sys.exit(130)
    report(result)
    if arguments.json:
        print(json.dumps(result))
