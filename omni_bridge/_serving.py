"""Serve an ASGI app with uvicorn from Python: in the running loop, from a thread, or until a signal.

Used by the sandbox, the test kit and `omni-bridge serve`. Sockets are bound before uvicorn starts (no race
for the port) and created with `IPPROTO_TCP`: asyncio sets `TCP_NODELAY` on accepted connections only for such
sockets, and without it every response waits ~40 ms for the client's delayed ACK. A port that cannot be had
(busy, out of range, not allowed) is a `ConfigError` naming the address, which the CLI prints as one line.

Asked to exit, uvicorn's own loop notices within 0.1 s (it polls `should_exit`); `PromptServer` is woken at
once instead: a stop took 101 ms instead of 175 (`bench/serving.py`), for the console's exit and for each
server a test starts.

uvicorn is told not to configure logging (`log_config=None`): its loggers (`uvicorn.*`) then follow whatever
the process set up, e.g. the CLI's `--log-level`, instead of being reset each time a server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from omni_bridge.exceptions import ConfigError

__all__ = ["ExitHookServer", "PromptServer", "bind", "serve_asgi", "serve_asgi_in_thread"]

_START_TIMEOUT = 30.0


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (port 0: a free one), not yet listening.

    Raises:
        ConfigError: the address cannot be had: the port is in use or out of range, or the host is not local.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:  # OverflowError: a port beyond 0-65535
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot listen on {_shown(host)}:{port}: {reason}") from None
    return sock


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class PromptServer(uvicorn.Server):
    """uvicorn's server, which starts shutting down as soon as `exit_soon()` is called, from any thread.

    Its main loop is uvicorn's, with the 0.1 s sleep between ticks made a wait that `exit_soon` ends early;
    the ticks (`on_tick`: the Date header, `limit_max_requests`) run as before.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken = asyncio.Event()  # bound to the serving loop on its first wait

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def exit_soon(self) -> None:
        """Ask the server to shut down, and wake its loop to do it now (safe from any thread)."""
        self.should_exit = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is over already
                loop.call_soon_threadsafe(self._woken.set)

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._woken.wait()
            should_exit = await self.on_tick(counter)


class ExitHookServer(PromptServer):
    """A `PromptServer` calling `before_exit` on its loop first when a signal (Ctrl-C, SIGTERM) asks it to exit.

    The hook runs before uvicorn waits for open connections, so whatever holds them open (event streams, say)
    can end them and the process exits promptly.
    """

    def __init__(self, config: uvicorn.Config, before_exit: Callable[[], object]) -> None:
        super().__init__(config)
        self._before_exit = before_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            # A signal handler runs between two bytecodes of the loop's thread: hand the work to the loop.
            self._loop.call_soon_threadsafe(self._before_exit)
        super().handle_exit(sig, frame)
        self.exit_soon()


def _bind(host: str, port: int) -> tuple[socket.socket, str]:
    sock = bind(host, port)
    return sock, f"http://{_shown(host)}:{sock.getsockname()[1]}"


def _server(app: ASGIApp) -> PromptServer:
    return PromptServer(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on the running loop until the block ends; yields the base URL."""
    sock, url = _bind(host, port)
    server = _server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # re-raises why it could not start
                    raise RuntimeError(f"server for {url} stopped before it started")
                await asyncio.sleep(0.01)
        yield url
    finally:
        server.exit_soon()
        await task
        sock.close()


@contextlib.contextmanager
def serve_asgi_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a daemon thread with its own event loop; yields the base URL."""
    sock, url = _bind(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"asgi {url}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server for {url} did not start")
            time.sleep(0.01)
        yield url
    finally:
        server.exit_soon()
        thread.join(timeout=_START_TIMEOUT)
        sock.close()
