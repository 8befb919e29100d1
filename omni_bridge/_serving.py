"""Serve an ASGI app on a loopback port from Python: in the running loop, or from a thread.

Used by the sandbox, the test kit and the CLI. Sockets are bound before uvicorn starts (no race for the
port) and created with `IPPROTO_TCP`, so asyncio sets `TCP_NODELAY` on accepted connections; without it
every response waits ~40 ms for a delayed ACK (sdk-notes pitfall 7). A port that cannot be had (busy,
out of range, not allowed) is a `ConfigError` naming the address, which the CLI prints as one line.

uvicorn is told not to configure logging (`log_config=None`): its loggers (`uvicorn.*`) then follow whatever
the process set up, e.g. the CLI's `--log-level`, instead of being reset each time a server starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from omni_bridge.exceptions import ConfigError

__all__ = ["bind", "port_number", "serve_asgi", "serve_asgi_in_thread"]

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


def port_number(text: str) -> int:
    """The `--port` option's type: a TCP port, 0 to 65535 (0: any free one), checked as options are read."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> tuple[socket.socket, str]:
    sock = bind(host, port)
    return sock, f"http://{_shown(host)}:{sock.getsockname()[1]}"


def _server(app: ASGIApp) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))


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
        server.should_exit = True
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
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        sock.close()
