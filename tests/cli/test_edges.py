"""The command at its edges, as a real process: Ctrl-C under `dev.py run`, a closed pipe, bad ports, log levels,
`doctor` as an end user, and the one rule for service keys.

Every command runs this checkout's code (`PYTHONPATH` is the root these tests belong to), so the tests judge the
tree they sit in, whichever interpreter runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_bridge.sandbox import SandboxConfig, embed_user_id
from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ToolCall, text_reply, tool_then_answer
from tests.cli.console_helpers import clean_env
from tests.conftest import Served

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0
"""Seconds any one step may take at most (a command starts its own sandbox; a busy machine is slow)."""
ORG_KEY = SandboxConfig().org_key


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "omni_bridge.cli", *args]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env(tmp_path / "data", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=tmp_path, env=environment(tmp_path, **extra), capture_output=True, text=True, timeout=WAIT
    )


# --- Ctrl-C under `python3 dev.py run` -------------------------------------------------------------------

# Makes the pty the controlling terminal of the new session (as a terminal emulator's login does), then runs the
# command: Ctrl-C can then reach "the terminal's foreground process group", whoever is in it.
_ON_THE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A command on a pseudo-terminal: what it wrote, what to type, and Ctrl-C as a terminal sends it."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self._master, slave = os.openpty()
        termios.tcsetwinsize(slave, (40, 120))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ON_THE_TERMINAL, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.output = ""
        self._seen = 0

    def expect(self, text: str) -> None:
        """Read until `text` appears after what was expected before; fail if the command ends first."""
        deadline = WAIT
        while text not in self.output[self._seen :]:
            ready, _, _ = select.select([self._master], [], [], deadline)
            assert ready, f"no {text!r} within {WAIT:.0f}s; the terminal shows:\n{self.output}"
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every process on the terminal has ended
                chunk = b""
            assert chunk, f"the command ended before {text!r}; the terminal shows:\n{self.output}"
            self.output += chunk.decode(errors="replace")
        self._seen = self.output.index(text, self._seen) + len(text)

    def type(self, line: str) -> None:
        os.write(self._master, line.encode() + b"\r")

    def ctrl_c(self) -> None:
        # What the terminal does on Ctrl-C: SIGINT to its whole foreground process group.
        os.killpg(os.tcgetpgrp(self._master), signal.SIGINT)

    def wait(self) -> int:
        code = self.process.wait(timeout=WAIT)
        self._drain()
        return code

    def _drain(self) -> None:
        while select.select([self._master], [], [], 0)[0]:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk.decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self._master)


@pytest.fixture
def dev_venv(tmp_path: Path) -> Path:
    """A virtual environment `dev.py` finds ready: this interpreter's commands, and the stamp of this pyproject.

    `dev.py` reinstalls whenever the stamp differs from pyproject.toml's hash; pointing it at a stand-in keeps it
    from ever reinstalling the environment these tests run in.
    """
    real = Path(sys.prefix) / "bin"
    if not (real / "omni-bridge").exists():
        pytest.skip("the omni-bridge command is not installed in this environment")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "omni-bridge").symlink_to(real / "omni-bridge")
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".omni-bridge-installed").write_text(stamp, encoding="utf-8")
    return venv


@pytest.fixture
def endless_first_answer() -> Iterator[tuple[str, threading.Event]]:
    """A fake Messages API whose first answer never ends; the event is set once it is being written."""
    answering = threading.Event()

    def respond(request: CapturedRequest) -> Reply:
        if not answering.is_set():
            answering.set()
            return text_reply("This answer never ends.", delay_seconds=60)
        return text_reply("Another answer.")

    with FakeAnthropic(responder=respond).run_in_thread() as url:
        yield url, answering


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_ctrl_c_under_dev_py_run_stops_only_the_answer(
    tmp_path: Path, dev_venv: Path, endless_first_answer: tuple[str, threading.Event]
) -> None:
    url, answering = endless_first_answer
    env = environment(
        tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url, OMNI_BRIDGE_VENV=str(dev_venv), TERM="dumb"
    )
    console = Terminal([sys.executable, str(ROOT / "dev.py"), "run"], env=env, cwd=tmp_path)
    try:
        console.expect("alice@claude> ")
        console.type("revenue by region")
        assert answering.wait(WAIT), console.output
        console.ctrl_c()
        console.expect("(answer stopped)")
        console.expect("alice@claude> ")  # the same console, asking for the next question
        console.type("/quit")
        code = console.wait()
    finally:
        console.close()

    assert code == 0, console.output
    assert "Traceback" not in console.output and "KeyboardInterrupt" not in console.output
    assert "installing" not in console.output  # dev.py found its environment ready


# --- a closed pipe ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ask", "revenue by region", "--sandbox"],
        ["doctor", "--sandbox"],
        ["sandbox", "--port", "0"],
    ],
    ids=["ask", "doctor", "sandbox"],
)
def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, as after `| head -c1`
    try:
        done = subprocess.run(
            cli(*args), cwd=tmp_path, env=environment(tmp_path), stdout=write_end, stderr=subprocess.PIPE, timeout=WAIT
        )
    finally:
        os.close(write_end)

    stderr = done.stderr.decode()
    assert done.returncode == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "failed" not in stderr, stderr


# --- ports -----------------------------------------------------------------------------------------------

SERVING = {
    "sandbox": ["sandbox"],
    "serve": ["serve", "--sandbox"],
    "mcp-proxy": ["mcp-proxy", "--transport", "http", "--sandbox", "--service-key", "a-long-enough-service-key"],
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("command", SERVING)
@pytest.mark.parametrize("port", ["65536", "-1", "http"])
def test_a_port_out_of_range_is_one_line_and_exit_2(tmp_path: Path, command: str, port: str) -> None:
    done = run(cli(*SERVING[command], "--port", port), tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "--port" in line and "is not a port number (0 to 65535)" in line


@pytest.mark.parametrize("command", SERVING)
def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path, command: str, busy_port: int) -> None:
    done = run(cli(*SERVING[command], "--port", str(busy_port)), tmp_path)

    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{busy_port}" in line


# --- log levels ------------------------------------------------------------------------------------------


@pytest.fixture
def fake_claude() -> Iterator[str]:
    with FakeAnthropic(
        responder=tool_then_answer(ToolCall("getData", {"prompt": "revenue by region"}))
    ).run_in_thread() as url:
        yield url


@pytest.mark.parametrize(
    ("options", "extra"),
    [([], {"BRIDGE_LOG_LEVEL": "DEBUG"}), (["-vv"], {}), (["--log-level", "debug"], {})],
    ids=["BRIDGE_LOG_LEVEL", "-vv", "--log-level"],
)
def test_debug_logs_go_to_stderr_without_secrets_and_stdout_keeps_only_the_json(
    tmp_path: Path, fake_claude: str, options: list[str], extra: dict[str, str]
) -> None:
    anthropic_key = "test-anthropic-key-never-logged"
    done = run(
        cli("ask", "revenue by region", "--sandbox", "--json", *options),
        tmp_path,
        ANTHROPIC_API_KEY=anthropic_key,
        ANTHROPIC_BASE_URL=fake_claude,
        **extra,
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)  # one JSON object and nothing else
    assert answer["outcome"] == "completed" and answer["tool_calls"]
    debug = [line for line in done.stderr.splitlines() if line.startswith("DEBUG omni_bridge.")]
    assert any("opened MCP session" in line for line in debug), done.stderr
    assert anthropic_key not in done.stderr and ORG_KEY not in done.stderr


def test_without_a_level_only_warnings_are_logged(tmp_path: Path, fake_claude: str) -> None:
    done = run(
        cli("ask", "revenue by region", "--sandbox", "--json"),
        tmp_path,
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=fake_claude,
    )

    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith(("DEBUG ", "INFO "))], done.stderr


# --- doctor ----------------------------------------------------------------------------------------------


def _mcp_requests(served: Served) -> int:
    counts: dict[str, int] = served.sandbox.stats.snapshot()["counts"]
    return counts.get("mcp.requests", 0)


def test_doctor_without_a_user_checks_rest_says_how_to_check_mcp_and_never_opens_it(
    tmp_path: Path, served: Served
) -> None:
    before = _mcp_requests(served)
    done = run(cli("doctor"), tmp_path, OMNI_BASE_URL=served.url, OMNI_API_KEY=served.org_key)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ REST: key accepted" in done.stdout
    assert "omni-bridge doctor --user <external id>" in done.stdout
    assert _mcp_requests(served) == before  # not one MCP request as the key's owner


def test_doctor_with_a_user_lists_the_tools_that_user_gets(tmp_path: Path, served: Served) -> None:
    opened = served.sandbox.stats.snapshot()["sessionsOpened"].get(embed_user_id("alice"), 0)
    done = run(cli("doctor", "--user", "alice"), tmp_path, OMNI_BASE_URL=served.url, OMNI_API_KEY=served.org_key)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ user 'alice' (Alice Anders) is Omni user {embed_user_id('alice')}" in done.stdout
    assert "✓ MCP as 'alice'" in done.stdout and "getData" in done.stdout
    # The tools were listed on a session of alice's own, the way every command acts.
    assert served.sandbox.stats.snapshot()["sessionsOpened"].get(embed_user_id("alice"), 0) == opened + 1


def test_doctor_says_which_auth_strategy_acts_for_end_users_and_never_the_secret(
    tmp_path: Path, served: Served
) -> None:
    secret = served.sandbox.config.embed_secret
    minted = served.sandbox.stats.counts["oauth.tokens_issued"]
    as_tokens = run(
        cli("doctor", "--user", "vera"),
        tmp_path,
        OMNI_BASE_URL=served.url,
        OMNI_API_KEY=served.org_key,
        OMNI_AUTH="embed_token",
        OMNI_EMBED_SECRET=secret,
    )
    as_key = run(cli("doctor", "--sandbox"), tmp_path)

    assert as_tokens.returncode == 0, as_tokens.stdout + as_tokens.stderr
    assert "auth: embed_token: a per-user embed MCP token" in as_tokens.stdout
    assert "✓ MCP as 'vera'" in as_tokens.stdout and "getData" not in as_tokens.stdout  # a Viewer's tools
    assert served.sandbox.stats.counts["oauth.tokens_issued"] == minted + 1
    assert secret not in as_tokens.stdout + as_tokens.stderr
    assert "auth: org_key: the organization API key (hidden) plus X-MCP-User-ID" in as_key.stdout


def test_doctor_with_an_unknown_user_fails_the_check_and_exits_1(tmp_path: Path) -> None:
    done = run(cli("doctor", "--sandbox", "--user", "mallory"), tmp_path)

    assert done.returncode == 1, done.stderr
    assert "✗ user 'mallory'" in done.stdout and "✓ MCP" not in done.stdout


# --- service keys ----------------------------------------------------------------------------------------

SHORT_KEY = "0123456789"


def test_serve_and_the_http_proxy_refuse_a_short_service_key_with_the_same_message(tmp_path: Path) -> None:
    keys = {"BRIDGE_SERVICE_KEYS": f"acme:{SHORT_KEY}"}
    served = run(cli("serve", "--sandbox", "--port", "0"), tmp_path, **keys)
    proxied = run(cli("mcp-proxy", "--transport", "http", "--sandbox", "--port", "0"), tmp_path, **keys)

    for done in (served, proxied):
        assert done.returncode == 2, done.stderr
        assert done.stdout == "" and SHORT_KEY not in done.stderr
    message = "BRIDGE_SERVICE_KEYS: the key of 'acme' is shorter than 16 characters"
    assert served.stderr.split(": ", 1)[1] == proxied.stderr.split(": ", 1)[1]
    assert message in served.stderr


def test_the_http_proxy_refuses_a_short_service_key_flag(tmp_path: Path) -> None:
    done = run(
        cli("mcp-proxy", "--transport", "http", "--sandbox", "--port", "0", "--service-key", SHORT_KEY), tmp_path
    )

    assert done.returncode == 2, done.stderr
    assert "--service-key #1 is shorter than 16 characters" in done.stderr and SHORT_KEY not in done.stderr
