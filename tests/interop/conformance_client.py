"""The client command the MCP conformance suite runs: the bridge's own `SessionPool` and `Toolset`.

`conformance client --command "python conformance_client.py" --scenario <name>` starts a test server, then
runs this script with the server's URL as the last argument (and `MCP_CONFORMANCE_SCENARIO` set). The script
opens a session through the pool, lists the tools through a toolset, calls each tool the scenario offers and
exits 0 only if every call succeeded; the suite itself judges what it saw on the wire.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from omni_bridge.tools import MemoryArtifactStore, SessionKey, SessionPool, Toolset

# The arguments each scenario's tool expects (the suite checks the sum it receives).
ARGUMENTS: dict[str, dict[str, Any]] = {"add_numbers": {"a": 2, "b": 3}, "test_reconnection": {}}


async def run(url: str) -> int:
    # The suite's servers check no credentials; the pool insists on a key, so give it a dummy one.
    async with SessionPool(api_key="conformance-dummy-key", tool_timeout=30) as pool:
        toolset = Toolset(pool, SessionKey(server=url, user_id="conformance-user"), artifacts=MemoryArtifactStore())
        definitions = await toolset.definitions()
        names = [d["name"] for d in definitions if d["name"] != "read_result"]
        print(f"scenario {os.environ.get('MCP_CONFORMANCE_SCENARIO')!r}: tools {names}")
        failed = 0
        for name in names:
            outcome = await toolset.call(name, ARGUMENTS.get(name, {}))
            print(f"{name}: is_error={outcome.is_error} {outcome.result.text[:200]!r}")
            failed += outcome.is_error
        return 1 if failed else 0


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: conformance_client.py <server url>", file=sys.stderr)
        return 2
    return asyncio.run(run(sys.argv[-1]))


if __name__ == "__main__":
    sys.exit(main())
