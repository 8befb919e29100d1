"""Run the `omni-bridge` command as a real subprocess, and read the numbers the sandbox holds for a user."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from omni_bridge.cli.console.render import format_number
from omni_bridge.sandbox import embed_user_id
from omni_bridge.tools import mcp_headers, parse_number
from tests.conftest import Served
from tests.sandbox.mcp_helpers import csv_rows, mcp_client

TIMEOUT = 120.0
"""Seconds one command may take at most (it starts its own sandbox; an answer takes a few seconds)."""


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any omni-bridge setting, plus `BRIDGE_DATA_DIR` and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    env.update(BRIDGE_DATA_DIR=str(data_dir), NO_COLOR="1", **extra)
    return env


async def start_cli(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "omni_bridge.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )


async def finish(process: asyncio.subprocess.Process, stdin: str | None = None) -> Finished:
    """Feed `stdin` (then close it) and wait for the command to end, within `TIMEOUT`."""
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def run_cli(*args: str, stdin: str = "", env: dict[str, str], cwd: Path) -> Finished:
    return await finish(await start_cli(*args, env=env, cwd=cwd), stdin)


async def revenue_by_region(served: Served, external_id: str) -> dict[str, str]:
    """What the sandbox's `getData` answers `external_id` for "revenue by region", as the console shows it."""
    headers = mcp_headers(served.org_key, user_id=embed_user_id(external_id))
    async with mcp_client(served.mcp_url, headers) as client:
        result = await client.call_tool("getData", {"prompt": "revenue by region"})
    assert result.structured_content is not None
    shown = {}
    for region, value in csv_rows(result.structured_content):
        number = parse_number(value)
        assert number is not None
        shown[region] = format_number(number)
    return shown
