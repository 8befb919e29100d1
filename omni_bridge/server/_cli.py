"""`omni-bridge serve`: run the HTTP service with uvicorn until Ctrl-C.

uvicorn serves a socket bound here with `IPPROTO_TCP` (without it asyncio skips `TCP_NODELAY` and every answer
waits ~40 ms for a delayed ACK; sdk-notes pitfall 7), and binding first also turns a busy port into a clear
error. On Ctrl-C (or SIGTERM) the service stops taking questions and ends its runs as `canceled` *before*
uvicorn waits for open connections, so event streams end and the process exits promptly.

`add_commands(subparsers)` registers the command on the `omni-bridge` parser (`omni_bridge.cli`, which owns
logging, errors and exit codes for every command).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import uvicorn

from omni_bridge import __version__
from omni_bridge._serving import bind, port_number
from omni_bridge.config import Settings, load_settings

if TYPE_CHECKING:
    from omni_bridge.server._service import Service

__all__ = ["add_commands", "cmd_serve"]

_GRACE_SECONDS = 10
"""How long uvicorn waits for open connections after the service has stopped its runs."""


class _Server(uvicorn.Server):
    """uvicorn's server, telling the service first when it is asked to exit."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self._service = service
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            # A signal handler runs between two bytecodes of the loop's thread: hand the work to the loop.
            self._loop.call_soon_threadsafe(self._service.begin_shutdown)
        super().handle_exit(sig, frame)


def _settings(sandbox: bool) -> Settings:
    settings = load_settings()
    if sandbox and not settings.uses_sandbox:
        # Everything that described the configured Omni means nothing to the sandbox.
        return load_settings(omni_base_url=None, omni_api_key=None, omni_model_id=None, omni_topic_name=None)
    return settings


async def _serve(settings: Settings, service: Service, sock: socket.socket) -> None:
    from omni_bridge.server._app import create_app  # the service's parts load when it runs (see the package doc)

    app = create_app(settings, service=service)
    config = uvicorn.Config(
        app,
        log_config=None,  # uvicorn's loggers follow the CLI's level (BRIDGE_LOG_LEVEL, -v, --log-level)
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACE_SECONDS,
    )
    server = _Server(config, service)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110  (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.05)
    if server.started:
        _announce(settings, service, sock)
    await task


def _announce(settings: Settings, service: Service, sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    omni = "the embedded sandbox" if service.bridge.sandbox is not None else str(settings.omni_base_url)
    print(f"omni-bridge {__version__} service listening on {url} (worker {service.worker_id})")
    print(f"  web chat page   {url}/")
    print(f"  API             {url}/v1/threads  and Omni-compatible AI jobs at {url}/api/v1/ai/jobs")
    print(f"  OpenAPI         {url}/openapi.json")
    print(f"  store           {service.location}")
    print(f"  Omni            {omni}; engines: {', '.join(service.bridge.engine_names())}")
    if service.dev_key is not None:
        # The one place the development key is ever shown (it is on the page at / too, for the browser).
        print(f"  development key {service.dev_key}   (no BRIDGE_SERVICE_KEYS: made for this run only)")
    else:
        print(f"  service keys    tenants {', '.join(service.keys.tenants)} (BRIDGE_SERVICE_KEYS)")
    print("Press Ctrl-C to stop.", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until interrupted; 2 for a bad option or setting."""
    from omni_bridge.server._service import Service  # loaded when serving, not when `--help` runs

    settings = _settings(args.sandbox)
    service = Service(settings, host=args.host, worker_id=args.worker_id)
    sock = bind(args.host, args.port)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(settings, service, sock))
    finally:
        sock.close()
    return 0


_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_commands(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    """Register `serve` on the `omni-bridge` command's subparsers."""
    serve = subparsers.add_parser(
        "serve",
        help="run the HTTP service (threads API, Omni-compatible AI jobs, web chat page)",
        description="Serve the HTTP API for chatbot backends until Ctrl-C. Backends authenticate with a service "
        "key (BRIDGE_SERVICE_KEYS, name:key pairs) and name the end user in X-Bridge-User. Without keys the "
        "service makes a development key, but only on a loopback host or with the sandbox.",
        epilog="examples:\n"
        "  omni-bridge serve --sandbox                    # no Omni, no keys: a development key is printed\n"
        "  BRIDGE_SERVICE_KEYS=acme:$KEY omni-bridge serve --host 0.0.0.0 --port 8080\n"
        "  BRIDGE_STORE_URL=postgresql://bridge@db/bridge omni-bridge serve --worker-id web-1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="start the embedded Omni sandbox in-process and use it, even when OMNI_BASE_URL is set",
    )
    serve.add_argument("--worker-id", metavar="ID", help="this worker's name in leases (default: host-pid-random)")
    serve.set_defaults(handler=cmd_serve)
