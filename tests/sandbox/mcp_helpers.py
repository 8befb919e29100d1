"""Open an `mcp` client session against a sandbox with the headers a test chooses."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str], *, mode: Any = "auto") -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=30)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


def csv_rows(structured: dict[str, Any]) -> list[list[str]]:
    return list(csv.reader(io.StringIO(structured["csv"])))[1:]


async def refusal(url: str, headers: dict[str, str], *, mode: Any = "auto") -> MCPError:
    """The `MCPError` a refused connection raises (the client wraps errors of its opening in a group)."""
    try:
        async with mcp_client(url, headers, mode=mode) as client:
            await client.list_tools()
    except MCPError as exc:
        return exc
    except BaseExceptionGroup as group:
        matched, _ = group.split(MCPError)
        while matched is not None:
            leaf = matched.exceptions[0]
            if isinstance(leaf, MCPError):
                return leaf
            matched = leaf if isinstance(leaf, BaseExceptionGroup) else None
        raise
    raise AssertionError("the sandbox accepted a request it should have refused")


async def wait_until(predicate: Callable[[], object], *, seconds: float = 5.0) -> None:
    """Poll a condition the sandbox's thread-safe counters will make true; fail after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def text_of(result: CallToolResult) -> str:
    """The text of a tool result's first content block (the sandbox always answers with text)."""
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text
