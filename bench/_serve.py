"""What the benchmarks share: child processes (`omni-bridge serve`, the sandbox, the fake model), figures, output.

A bench script imports it as `import _serve` (a script's own folder is first on `sys.path`). The pieces:

- `Child`: a process whose stdout and stderr go to a log file; `await child.banner(pattern)` waits for a line
  it prints (where it listens), `stop()` is SIGTERM then SIGKILL after a grace time, `kill()` is SIGKILL.
- `serve(env, data_dir)`: `omni-bridge serve --port 0` on one worker, in its own process, as an async context
  manager yielding a `Server` (its `url`, `pid` and `log`); `serve_env(...)` is the environment that points it at
  the sandbox and the fake model with the `claude` engine and one service key.
- `sandbox(logs)`: `omni-bridge sandbox --port 0` alone in its own process, yielding its URL.
- `backends(logs)`: the Omni sandbox and the zero-latency fake Messages API (one `getData` call, then the
  answer) together in one process of their own, yielding a `Backends` (`sandbox_url`, `org_key`, `model_url`),
  so neither shares a GIL with the bridge being measured. `python bench/_serve.py backends` is that process.
- `child_env(extra)`: this process's environment without any OMNI_*/ANTHROPIC_*/BRIDGE_* setting, plus `extra`.
- `percentile(values, q)`, `rss_kib(pid)`, `open_fds(pid)` (Linux: `/proc`), `say(message)` (progress, stderr),
  `print_json(figures)` (the one JSON object a bench prints last with `--json`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CLI",
    "LISTENING",
    "ORG_KEY",
    "Backends",
    "Child",
    "Server",
    "backends",
    "bench_user",
    "child_env",
    "open_fds",
    "percentile",
    "print_json",
    "rss_kib",
    "sandbox",
    "say",
    "serve",
    "serve_env",
]

CLI = [sys.executable, "-m", "omni_bridge.cli"]
LISTENING = re.compile(r"listening on (http://\S+)")
"""The line `serve`, `sandbox` and `backends` print once they take connections; group 1 is the URL."""
ORG_KEY = re.compile(r"organization key\s+(\S+)")
"""The sandbox's organization key, as `omni-bridge sandbox` and `backends` print it."""
_HERE = Path(__file__).resolve()
MODEL_LISTENING = re.compile(r"fake model listening on (http://\S+)")
START_SECONDS = 90.0
"""How long a process may take to print where it listens (imports are slow on a busy machine)."""
STOP_GRACE_SECONDS = 15.0
"""SIGTERM's grace before SIGKILL: longer than `serve`'s own 10 s for open connections."""


REGIONS = ("West", "East", "Central", "South")


def bench_user(number: int) -> str:
    """The external id of the `number`th end user `backends(users=...)` makes (with a region, for row security)."""
    return f"bench-user-{number:05d}"


def say(message: str) -> None:
    """Progress for people, on stderr (stdout is the bench's table and its JSON line)."""
    print(message, file=sys.stderr, flush=True)


def print_json(figures: Mapping[str, Any]) -> None:
    """The figures as one JSON object on one line: what `--json` prints last, for a script to compare."""
    print(json.dumps(figures), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values` by nearest rank; sorts a copy. Raises ValueError when empty."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def rss_kib(pid: int) -> int:
    """The resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`; Linux only)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    """How many file descriptors process `pid` has open (`/proc/<pid>/fd`; Linux only)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the bridge's settings (so a stray `.env` or shell export cannot change a run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    return env | {"PYTHONUNBUFFERED": "1"} | dict(extra or {})


@dataclass
class Child:
    """A child process whose stdout and stderr go to `log` (appended: a restart adds a `--- start` section)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """What this start of the process has printed so far."""
        return self.log.read_text(errors="replace").rsplit("--- start ", 1)[-1]

    async def banner(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """The first match of `pattern` in this start's output, once printed (the process saying where it listens).

        Raises:
            RuntimeError: the process exited first (with the end of its output), or did not print it in time.
        """
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            text = self.output()
            if (found := pattern.search(text)) is not None:
                return found
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{text[-2000:]}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start within {START_SECONDS:.0f} s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL if it has not exited after `STOP_GRACE_SECONDS`; False when it had to be killed."""
        if self.process is None or self.process.poll() is not None:
            return True
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        return True


@dataclass(frozen=True)
class Server:
    """A running `omni-bridge serve`: where it listens, its process id, and the file its output goes to."""

    url: str
    pid: int
    log: Path


def serve_env(
    *, sandbox_url: str, org_key: str, model_url: str, service_key: str, data_dir: Path, **settings: str
) -> dict[str, str]:
    """The environment of a `serve` on the sandbox with the `claude` engine on the fake model, one tenant `bench`.

    Omni's REST pacing is lifted (the sandbox sets no limit; at Omni's 60/min identity resolution of many users
    would be the figure). `settings` adds or overrides variables: `BRIDGE_MAX_RUNS_PER_TENANT="1000"`.
    """
    return child_env(
        {
            "OMNI_BASE_URL": sandbox_url,
            "OMNI_API_KEY": org_key,
            "OMNI_REST_REQUESTS_PER_MINUTE": "1000000",
            "ANTHROPIC_API_KEY": "bench-fake-anthropic-key",
            "ANTHROPIC_BASE_URL": model_url,
            "BRIDGE_ENGINE": "claude",
            "BRIDGE_SERVICE_KEYS": f"bench:{service_key}",
            "BRIDGE_DATA_DIR": str(data_dir),
            **settings,
        }
    )


@contextlib.asynccontextmanager
async def serve(
    env: Mapping[str, str], data_dir: Path, *, name: str = "serve", args: Sequence[str] = ()
) -> AsyncIterator[Server]:
    """`omni-bridge serve --port 0 ARGS` on one worker in its own process, up; stopped on the way out.

    Its output goes to `data_dir/<name>.log` (set `BRIDGE_LOG_LEVEL` in `env` for more of it), which is also
    its working directory.
    """
    child = Child(name, [*CLI, "serve", "--port", "0", *args], dict(env), data_dir / f"{name}.log")
    child.start()
    try:
        url = (await child.banner(LISTENING)).group(1)
        yield Server(url, child.pid, child.log)
    finally:
        await asyncio.to_thread(child.stop)


@contextlib.asynccontextmanager
async def sandbox(logs: Path, *, job_step_seconds: float | None = None) -> AsyncIterator[str]:
    """`omni-bridge sandbox --port 0` in its own process, up; yields its base URL; stopped on the way out.

    Its output goes to `logs/sandbox.log`. The sandbox's organization key is `SandboxConfig().org_key`.
    """
    argv = [*CLI, "sandbox", "--port", "0"]
    if job_step_seconds is not None:
        argv += ["--job-step-seconds", str(job_step_seconds)]
    child = Child("sandbox", argv, child_env(), logs / "sandbox.log")
    child.start()
    try:
        yield (await child.banner(LISTENING)).group(1)
    finally:
        await asyncio.to_thread(child.stop)


@dataclass(frozen=True)
class Backends:
    """What the bridge talks to: the Omni sandbox and the fake Messages API, in their own process."""

    sandbox_url: str
    org_key: str
    model_url: str
    pid: int


@contextlib.asynccontextmanager
async def backends(logs: Path, *, users: int = 0, job_step_seconds: float = 0.02) -> AsyncIterator[Backends]:
    """The sandbox and the zero-latency fake model (`getData`, then the answer) in one child process, up.

    The sandbox holds the embed users `bench_user(0)` to `bench_user(users - 1)`, made before it listens.
    """
    argv = [sys.executable, str(_HERE), "backends", "--users", str(users)]
    argv += ["--job-step-seconds", str(job_step_seconds)]
    child = Child("backends", argv, child_env(), logs / "backends.log")
    child.start()
    try:
        sandbox_url = (await child.banner(LISTENING)).group(1)
        org_key = (await child.banner(ORG_KEY)).group(1)
        model_url = (await child.banner(MODEL_LISTENING)).group(1)
        yield Backends(sandbox_url, org_key, model_url, child.pid)
    finally:
        await asyncio.to_thread(child.stop)


def _run_backends(users: int, job_step_seconds: float) -> None:
    """The `backends` process: both servers on threads until SIGTERM (or Ctrl-C)."""
    import signal

    from omni_bridge.sandbox import Sandbox, SandboxConfig
    from omni_bridge.testing import FakeAnthropic, ToolCall, tool_then_answer

    sandbox = Sandbox(SandboxConfig(job_step_seconds=job_step_seconds))
    for number in range(users):
        region = REGIONS[number % len(REGIONS)]
        sandbox.directory.upsert_embed(bench_user(number), f"Bench User {number}", attributes={"region": region})
    model = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "revenue by region"})))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with sandbox.run_in_thread() as sandbox_url, model.run_in_thread() as model_url:
        print(f"sandbox listening on {sandbox_url}")
        print(f"  organization key  {sandbox.config.org_key}")
        print(f"fake model listening on {model_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while not stopped.wait(0.5):
                pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The benchmarks' child processes (see the module docstring).")
    commands = parser.add_subparsers(dest="command", required=True)
    run_backends = commands.add_parser("backends", help="the sandbox and the fake model, until SIGTERM")
    run_backends.add_argument("--users", type=int, default=0, help="embed users to make (bench_user(n))")
    run_backends.add_argument("--job-step-seconds", type=float, default=0.02, help="the sandbox's AI job step")
    parsed = parser.parse_args()
    _run_backends(parsed.users, parsed.job_step_seconds)
