"""Print the MCP client configuration that puts `omni-bridge mcp-proxy` in front of Omni, and optionally try it.

    python examples/mcp_proxy_config.py --user alice             # Claude Desktop / Cursor, stdio, one user
    python examples/mcp_proxy_config.py --user alice --check     # launch it as the client would; list and call
    python examples/mcp_proxy_config.py --http https://bridge.example.com/mcp --user alice   # a shared HTTP proxy

The stdio entry runs the proxy as a child of the desktop client, acting for the one user it names; it reads the
rest (`OMNI_BASE_URL`, `OMNI_API_KEY`, …) from the `env` block. With `--sandbox` the entry starts the sandbox
inside the proxy instead, so it works with no Omni and no key at all. The command is the absolute path of the
`omni-bridge` script of this Python environment: desktop clients do not see your shell's `PATH`.

The HTTP entry is for a proxy your organisation runs (`omni-bridge mcp-proxy --transport http`): the client
sends a service key and names the end user in `X-Bridge-User`. A service key may act for any user, so give it
only to clients whose configuration your organisation controls; a person's own desktop should use stdio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters


def omni_bridge_command() -> str:
    """The `omni-bridge` script installed beside this Python (absolute, since desktop clients ignore PATH)."""
    script = Path(sys.executable).parent / ("omni-bridge.exe" if os.name == "nt" else "omni-bridge")
    return str(script)


def stdio_entry(user: str, *, sandbox: bool, omni_url: str | None) -> dict[str, Any]:
    """The `mcpServers` entry that launches the proxy over stdio for `user` (an external id)."""
    args = ["mcp-proxy", "--user", user, *(["--sandbox"] if sandbox else [])]
    entry: dict[str, Any] = {"command": omni_bridge_command(), "args": args}
    if not sandbox:
        entry["env"] = {"OMNI_BASE_URL": omni_url or "https://<instance>.omniapp.co", "OMNI_API_KEY": "<org API key>"}
    return entry


def http_entry(url: str, user: str) -> dict[str, Any]:
    """The `mcpServers` entry of a client reaching a shared HTTP proxy as `user`."""
    return {"url": url, "headers": {"Authorization": "Bearer <bridge service key>", "X-Bridge-User": user}}


async def check(entry: dict[str, Any]) -> str:
    """Launch the stdio entry as a desktop client would, list its tools and ask one question."""
    env = {**os.environ, **entry.get("env", {})}
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    async with Client(params) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("getData", {"prompt": "revenue by region"})
    answer = result.content[0].text if result.content and result.content[0].type == "text" else ""
    return f"tools: {', '.join(tools)}\n\n{answer}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="alice", help="the end user's external id (default alice)")
    parser.add_argument("--name", default="omni", help="the server's name in the client (default omni)")
    parser.add_argument("--sandbox", action="store_true", help="the proxy runs the sandbox itself (no Omni needed)")
    parser.add_argument("--omni-url", help="your Omni instance, for the env block")
    parser.add_argument("--http", metavar="URL", help="print the entry for a shared HTTP proxy at URL instead")
    parser.add_argument("--check", action="store_true", help="launch the stdio entry and call it (uses --sandbox)")
    args = parser.parse_args(argv)
    if args.http:
        entry = http_entry(args.http, args.user)
    else:
        entry = stdio_entry(args.user, sandbox=args.sandbox or args.check, omni_url=args.omni_url)
    print(json.dumps({"mcpServers": {args.name: entry}}, indent=2))
    if args.check:
        print("\n" + asyncio.run(check(entry)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
