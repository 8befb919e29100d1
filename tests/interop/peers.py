"""Find and run the third-party peers that `scripts/install_peers.py` installed (its manifest says where).

A peer that is not installed skips its tests with the reason the installer recorded. Every peer runs on
127.0.0.1, on a port the test chose, with `HOME` in a scratch folder (the Inspector keeps state there), and
is stopped by its own process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = Path(os.environ.get("OMNI_BRIDGE_PEERS_DIR", ROOT / "build" / "peers")) / "peers.json"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _manifest() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def peer(name: str) -> Path:
    """The entry point of an installed peer, or skip the test saying why it is missing."""
    record = _manifest().get(name)
    if record is None:
        pytest.skip(f"{name} is not installed: run `python3 dev.py test` or `python3 scripts/install_peers.py`")
    if not record.get("ok"):
        pytest.skip(f"{name} could not be installed: {record.get('reason')}")
    path = Path(str(record["path"]))
    if not path.exists():
        pytest.skip(f"{name} is missing at {path}: run `python3 scripts/install_peers.py --force`")
    return path


def version(name: str) -> str:
    return str(_manifest().get(name, {}).get("version"))


def node22() -> Path:
    return peer("node22")


def node_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a Node peer: Node 22 first on PATH, a scratch HOME, no colours."""
    env = dict(os.environ)
    env["PATH"] = f"{node22().parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HOME=str(home), NO_COLOR="1", FORCE_COLOR="0", CI="true")
    env.update(extra)
    return env


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the peer exited with {process.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class EverythingServer:
    """`@modelcontextprotocol/server-everything` (TypeScript SDK) over streamable HTTP at `/mcp`.

    It binds all interfaces, so tests connect only to 127.0.0.1 and keep each run short. `restart()` starts
    a new process on the same port: the sessions the old one handed out are unknown to the new one.
    """

    def __init__(self, home: Path) -> None:
        self.script = peer("server-everything")
        self.home = home
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        env = dict(os.environ, PORT=str(self.port), HOME=str(self.home), NO_COLOR="1")
        self.process = subprocess.Popen(
            [str(node22()), str(self.script), "streamableHttp"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


PROXY_SERVICE_KEY = "svc-interop-key-0123456789"
"""The one service key the test proxy admits (a test value, at least 16 characters as serve's rule asks)."""


@contextlib.contextmanager
def http_proxy(mcp_url: str, org_key: str, home: Path) -> Iterator[str]:
    """`omni-bridge mcp-proxy --transport http` as its own process in front of `mcp_url`; yields its MCP URL.

    Settings go in through the environment, as a deployment would set them (the drop-in `MCP_*` names for
    Omni, `BRIDGE_SERVICE_KEYS` for callers), with any `OMNI_*`/`BRIDGE_*`/`MCP_*` of the test run removed
    and `cwd` in a scratch folder so no `.env` is read.
    """
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OMNI_", "BRIDGE_", "MCP_"))}
    env.update(MCP_SERVER_URL=mcp_url, MCP_API_KEY=org_key, BRIDGE_SERVICE_KEYS=f"interop:{PROXY_SERVICE_KEY}")
    env["PYTHONPATH"] = str(ROOT)  # this checkout's package, even from another work tree
    command = [sys.executable, "-m", "omni_bridge.cli", "mcp-proxy", "--transport", "http", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(process)
