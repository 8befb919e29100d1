"""The MCP conformance suite (`@modelcontextprotocol/conformance`) against our two MCP servers.

Server scenarios `server-initialize`, `ping`, `tools-list` and `dns-rebinding-protection` run against the
sandbox's `/mcp/https` and against `omni-bridge mcp-proxy --transport http` (its own process, in front of the
sandbox). The suite's client sends no custom headers, so it talks to a loopback forwarder (`forwarder.py`)
that adds `Authorization` and the user header (`X-MCP-User-ID` for the sandbox, `X-Bridge-User` for the
proxy) and passes `Host`, `Origin`, every other header, the body and streamed responses through unchanged:
the DNS-rebinding verdict is the server's own. Each run's `checks.json` must hold only `SUCCESS` checks.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omni_bridge.sandbox import embed_user_id
from tests.conftest import Served
from tests.interop.forwarder import forwarding
from tests.interop.peers import PROXY_SERVICE_KEY, http_proxy, node_env, peer, strip_ansi

SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]


def run_scenario(url: str, scenario: str, home: Path) -> list[dict[str, Any]]:
    """Run one server scenario against `url`; the checks it recorded (after asserting it exited 0)."""
    out = home / "results"
    command = [str(peer("conformance")), "server", "--url", url, "--scenario", scenario, "-o", str(out)]
    done = subprocess.run(command, env=node_env(home), capture_output=True, text=True, timeout=180)
    report = strip_ansi(done.stdout + done.stderr)
    files = list(out.rglob("checks.json"))
    assert len(files) == 1, report
    checks: list[dict[str, Any]] = json.loads(files[0].read_text(encoding="utf-8"))
    assert done.returncode == 0, report
    return checks


def assert_all_pass(checks: list[dict[str, Any]], scenario: str) -> None:
    assert checks, f"{scenario} recorded no checks"
    failed = [check for check in checks if check.get("status") != "SUCCESS"]
    assert not failed, json.dumps(failed, indent=2)
    if scenario == "dns-rebinding-protection":
        by_id = {check["id"]: check for check in checks}
        assert set(by_id) == {"localhost-host-rebinding-rejected", "localhost-host-valid-accepted"}
        # Refused by the Host/Origin check itself (421/403), not by the key check behind it (401).
        assert by_id["localhost-host-rebinding-rejected"]["details"]["statusCode"] in (403, 421)


@pytest.fixture(scope="module")
def sandbox_via_forwarder(served: Served) -> Iterator[str]:
    added = {"Authorization": f"Bearer {served.org_key}", "X-MCP-User-ID": embed_user_id("alice")}
    with forwarding(served.url, added) as url:
        yield url + "/mcp/https"


@pytest.fixture(scope="module")
def proxy_via_forwarder(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with http_proxy(served.mcp_url, served.org_key, tmp_path_factory.mktemp("proxy")) as proxy_url:
        base, _, path = proxy_url.rpartition("/")
        added = {"Authorization": f"Bearer {PROXY_SERVICE_KEY}", "X-Bridge-User": "alice"}
        with forwarding(base, added) as url:
            yield f"{url}/{path}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_sandbox_passes_the_conformance_scenario(sandbox_via_forwarder: str, scenario: str, tmp_path: Path) -> None:
    assert_all_pass(run_scenario(sandbox_via_forwarder, scenario, tmp_path), scenario)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_http_proxy_passes_the_conformance_scenario(
    proxy_via_forwarder: str, scenario: str, tmp_path: Path
) -> None:
    assert_all_pass(run_scenario(proxy_via_forwarder, scenario, tmp_path), scenario)
