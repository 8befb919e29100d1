"""The MCP Inspector CLI (`@modelcontextprotocol/inspector`) as an MCP client of the sandbox and the HTTP proxy.

It connects straight to each server (it sends our headers itself): the sandbox at `/mcp/https` with the org
key and `X-MCP-User-ID`, and `omni-bridge mcp-proxy --transport http` (its own process) with a service key
and `X-Bridge-User`. Two users of different regions call `getData` in the legacy and the modern protocol
era, and each must see only their own region's rows (row-level security survives a client nobody here
wrote). Also a tools/list, an unknown tool (exit 5) and a call without credentials (exit 3, auth required).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omni_bridge.sandbox import embed_user_id
from omni_bridge.tools import CODE_ONLY_TOOLS
from tests.conftest import Served
from tests.interop.peers import PROXY_SERVICE_KEY, http_proxy, node_env, peer, strip_ansi

REGIONS = {"alice": "West", "bob": "East"}
ALL_REGIONS = {"West", "East", "Central", "South"}
ERAS = pytest.mark.parametrize("era", ["legacy", "modern"])
USERS = pytest.mark.parametrize("user", sorted(REGIONS))


def inspector(home: Path, url: str, headers: list[str], *args: str) -> tuple[int, str, str]:
    """Run the Inspector CLI once against `url` (bounded); its exit code, stdout and stderr."""
    command = [str(peer("inspector")), "--cli", url, "--transport", "http", "--format", "json", "-q"]
    if headers:
        command += ["--header", *headers]
    # Never start an interactive OAuth login: with no credentials, fail as auth required.
    command += ["--stored-auth-only", *args]
    done = subprocess.run(command, env=node_env(home), capture_output=True, text=True, timeout=120)
    return done.returncode, strip_ansi(done.stdout), strip_ansi(done.stderr)


def get_data(home: Path, url: str, headers: list[str], era: str) -> dict[str, Any]:
    code, out, err = inspector(
        home,
        url,
        headers,
        "--protocol-era",
        era,
        "--method",
        "tools/call",
        "--tool-name",
        "getData",
        "--tool-arg",
        "prompt=total revenue by region",
    )
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)["result"]
    assert result.get("isError") is False, out
    return result


def regions_in(result: dict[str, Any]) -> set[str]:
    """Regions named anywhere in the rows, the text or the query the server returned."""
    text = json.dumps(result)
    return {region for region in ALL_REGIONS if region in text}


def sandbox_headers(served: Served, user: str) -> list[str]:
    return [f"Authorization: Bearer {served.org_key}", f"X-MCP-User-ID: {embed_user_id(user)}"]


def proxy_headers(user: str) -> list[str]:
    return [f"Authorization: Bearer {PROXY_SERVICE_KEY}", f"X-Bridge-User: {user}"]


@pytest.fixture(scope="module")
def proxy_url(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with http_proxy(served.mcp_url, served.org_key, tmp_path_factory.mktemp("proxy")) as url:
        yield url


@ERAS
@USERS
def test_get_data_on_the_sandbox_shows_only_the_users_region(
    served: Served, tmp_path: Path, era: str, user: str
) -> None:
    result = get_data(tmp_path, served.mcp_url, sandbox_headers(served, user), era)

    assert regions_in(result) == {REGIONS[user]}
    assert result["structuredContent"]["rowCount"] == 1
    # The era really differed: only a modern (sessionless) result names its server in `_meta`.
    assert ("io.modelcontextprotocol/serverInfo" in result.get("_meta", {})) == (era == "modern")


@ERAS
@USERS
def test_get_data_through_the_http_proxy_shows_only_the_users_region(
    proxy_url: str, tmp_path: Path, era: str, user: str
) -> None:
    result = get_data(tmp_path, proxy_url, proxy_headers(user), era)

    assert regions_in(result) == {REGIONS[user]}
    assert result["structuredContent"]["rowCount"] == 1


@pytest.mark.parametrize("target", ["sandbox", "proxy"])
def test_tools_list_names_the_omni_tools_with_schemas(
    served: Served, proxy_url: str, tmp_path: Path, target: str
) -> None:
    url, headers = (
        (served.mcp_url, sandbox_headers(served, "alice"))
        if target == "sandbox"
        else (proxy_url, proxy_headers("alice"))
    )
    code, out, err = inspector(tmp_path, url, headers, "--method", "tools/list")

    assert code == 0, err
    tools = {tool["name"]: tool for tool in json.loads(out)["result"]["tools"]}
    hidden = CODE_ONLY_TOOLS if target == "proxy" else frozenset()  # never offered to an agent by the bridge
    assert set(tools) == set(served.sandbox.tools.enabled_tools()) - hidden
    assert tools["getData"]["inputSchema"]["required"] == ["prompt"]


@pytest.mark.parametrize("target", ["sandbox", "proxy"])
def test_an_unknown_tool_is_a_tool_error(served: Served, proxy_url: str, tmp_path: Path, target: str) -> None:
    url, headers = (
        (served.mcp_url, sandbox_headers(served, "alice"))
        if target == "sandbox"
        else (proxy_url, proxy_headers("alice"))
    )
    code, _, err = inspector(tmp_path, url, headers, "--method", "tools/call", "--tool-name", "noSuchTool")

    assert code == 5, err


@pytest.mark.parametrize("target", ["sandbox", "proxy"])
def test_a_call_without_credentials_is_auth_required(
    served: Served, proxy_url: str, tmp_path: Path, target: str
) -> None:
    url = served.mcp_url if target == "sandbox" else proxy_url
    code, out, err = inspector(
        tmp_path, url, [], "--method", "tools/call", "--tool-name", "getData", "--tool-arg", "prompt=revenue"
    )

    assert code == 3, err
    assert json.loads(err)["error"]["code"] == "auth_required"
    assert out == ""
