"""`LazyMcpApp`: the sandbox's MCP endpoint, built on its first request rather than when the sandbox is made.

Why: `mcp` takes most of a second to import, and the embedded sandbox starts before the console's first prompt,
while the console's default engine (`omni`, Omni's own agent) never speaks MCP. So the MCP server, its tools
and its session manager are made when the first MCP request arrives (or when a test asks for them).

The session manager's `run()` holds an anyio task group, which must be entered and left by one task; a request
handler does not live long enough, so `run()` is entered by a task of the sandbox's lifespan, which the first
request starts and waits for. Leaving the lifespan stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LazyMcpApp"]


class LazyMcpApp:
    """ASGI app that builds `build()`'s MCP app on first use and runs its session manager until `lifespan` ends.

    `build` returns the MCP server (whose `session_manager` must run while requests are served) and its
    streamable-HTTP app. It is called at most once, from the first request or from `server()`.
    """

    def __init__(self, build: Callable[[], tuple[Any, ASGIApp]]) -> None:
        self._build = build
        self._built: tuple[Any, ASGIApp] | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._running: asyncio.Future[None] | None = None
        self._stop = anyio.Event()

    def server(self) -> Any:
        """The MCP server, built now if no request has needed it yet."""
        return self._ensure_built()[0]

    def _ensure_built(self) -> tuple[Any, ASGIApp]:
        if self._built is None:
            self._built = self._build()
        return self._built

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """While the sandbox serves: the task group the session manager will run in once it is needed."""
        self._stop = anyio.Event()
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield
            finally:
                self._stop.set()
                self._tasks = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._started()
        await self._ensure_built()[1](scope, receive, send)

    async def _started(self) -> None:
        if self._running is None:  # the first request starts the session manager; later ones wait for it
            if self._tasks is None:
                raise RuntimeError("the sandbox's MCP endpoint is served only inside its app's lifespan")
            self._running = asyncio.get_running_loop().create_future()
            self._tasks.start_soon(self._run, self._running)
        await asyncio.shield(self._running)

    async def _run(self, running: asyncio.Future[None]) -> None:
        try:
            server, _app = self._ensure_built()
            async with server.session_manager.run():  # required when the MCP app is mounted (pitfall 8)
                running.set_result(None)
                await self._stop.wait()
        except Exception as error:  # a build that failed fails every MCP request, saying why; REST goes on
            if not running.done():
                running.set_exception(error)
        finally:
            if not running.done():  # stopped before it ran: requests waiting on it end too
                running.set_exception(RuntimeError("the sandbox stopped before its MCP endpoint started"))
