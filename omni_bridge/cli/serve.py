"""`omni-bridge serve`: run the HTTP service with uvicorn until Ctrl-C.

uvicorn serves a socket bound here with `IPPROTO_TCP` (without it asyncio skips `TCP_NODELAY` and every answer
waits ~40 ms for a delayed ACK), and binding first also turns a busy port into a clear error. On Ctrl-C (or
SIGTERM) the service stops taking questions and ends its runs as `canceled` *before* uvicorn waits for open
connections, so event streams end and the process exits promptly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING

from omni_bridge import __version__
from omni_bridge.cli.options import add_listen_options, add_sandbox_option, command_settings, examples

if TYPE_CHECKING:
    import socket

    from omni_bridge.cli.options import Commands
    from omni_bridge.config import Settings
    from omni_bridge.server import Service

__all__ = ["add_command", "run"]

_GRACE_SECONDS = 10
"""How long uvicorn waits for open connections after the service has stopped its runs."""


def add_command(commands: Commands) -> None:
    """Register `serve` on the `omni-bridge` parser."""
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service (threads API, Omni-compatible AI jobs, web chat page)",
        description="Serve the HTTP API for chatbot backends until Ctrl-C. Backends authenticate with a service "
        "key (BRIDGE_SERVICE_KEYS, name:key pairs) and name the end user in X-Bridge-User. Without keys the "
        "service makes a development key, but only on a loopback host or with the sandbox.",
        epilog=examples(
            "# no Omni, no keys: a development key is printed",
            "omni-bridge serve --sandbox",
            "BRIDGE_SERVICE_KEYS=acme:$KEY omni-bridge serve --host 0.0.0.0 -p 8080",
            "# one of several workers sharing a PostgreSQL store",
            "BRIDGE_STORE_URL=postgresql://bridge@db/bridge omni-bridge serve --worker-id a",
        ),
    )
    add_listen_options(serve, port=8080)
    add_sandbox_option(serve)
    serve.add_argument("--worker-id", metavar="ID", help="this worker's name in leases (default: host-pid-random)")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the service until interrupted; 2 for a bad option or setting."""
    # The service, uvicorn and the engines under them load when serving, not when `--help` runs.
    from omni_bridge._serving import bind
    from omni_bridge.server import Service

    settings = command_settings(sandbox=args.sandbox)
    service = Service(settings, host=args.host, worker_id=args.worker_id)
    sock = bind(args.host, args.port)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(settings, service, sock))
    finally:
        sock.close()
    return 0


async def _serve(settings: Settings, service: Service, sock: socket.socket) -> None:
    import uvicorn

    from omni_bridge._serving import ExitHookServer
    from omni_bridge.server import create_app

    app = create_app(settings, service=service)
    config = uvicorn.Config(
        app,
        log_config=None,  # uvicorn's loggers follow the CLI's level (BRIDGE_LOG_LEVEL, -v, --log-level)
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACE_SECONDS,
    )
    server = ExitHookServer(config, before_exit=service.begin_shutdown)
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
