"""`omni-bridge mcp-proxy`: run the MCP proxy over stdio (one user, for desktop clients) or HTTP (many users).

```
omni-bridge mcp-proxy --user cust-42                       stdio, acting for the embed user `cust-42`
omni-bridge mcp-proxy --transport http --port 8766         HTTP; callers send a service key and X-Bridge-User
omni-bridge mcp-proxy --sandbox --user alice               either mode against the in-process sandbox
```

Settings come from `OMNI_*`/`BRIDGE_*` variables or `.env`, as everywhere in the bridge. So that the proxy can
replace Omni's own stdio bridge (`@omni-co/mcp`) in an existing client configuration, its variables are accepted
too and win over the `OMNI_*` ones: `MCP_SERVER_URL` (the MCP endpoint), `MCP_API_KEY`, `MCP_MODEL_ID`,
`MCP_TOPIC_NAME`, `MCP_USER_ID` (an Omni user id, used as is) and `DEBUG=true`. `MCP_USER_REQUIRED` is accepted
and has nothing left to switch: the proxy always sends `X-MCP-User-Required: true` and never runs without a user.

Over HTTP, callers send a service key: `--service-key` values and `BRIDGE_SERVICE_KEYS` (`name:key` pairs, read
as `omni-bridge serve` reads them), all under serve's rule (`check_service_key`: 16 characters at least).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from omni_bridge.cli.options import add_listen_options, examples
from omni_bridge.exceptions import ConfigError, IdentityError, OmniError

if TYPE_CHECKING:
    from omni_bridge.agent import OmniConnection
    from omni_bridge.cli.options import Commands
    from omni_bridge.config import Settings
    from omni_bridge.tools import SessionKey

__all__ = ["add_command", "run"]

log = logging.getLogger("omni_bridge.proxy")

_TRUE = {"1", "true", "yes", "on"}


def add_command(commands: Commands) -> None:
    """Register `mcp-proxy` on the `omni-bridge` parser."""
    proxy = commands.add_parser(
        "mcp-proxy",
        help="serve Omni's tools over MCP (stdio or HTTP), each request as its own end user",
        description="An MCP server in front of Omni: stdio for a desktop client acting for one user, or "
        "streamable HTTP for many users, each named per request. Calls go through the bridge's identity "
        "resolver and per-user session pool. It also takes the variables of Omni's own stdio bridge "
        "(@omni-co/mcp: MCP_SERVER_URL, MCP_API_KEY, MCP_USER_ID, ...), so it can replace it in a client's settings.",
        epilog=examples(
            "omni-bridge mcp-proxy -u cust-42   # stdio, acting for cust-42",
            "# HTTP: callers send a service key and X-Bridge-User",
            "BRIDGE_SERVICE_KEYS=acme:$KEY omni-bridge mcp-proxy -t http -p 8766",
            "omni-bridge mcp-proxy -s -u alice  # stdio, on an in-process sandbox",
        ),
    )
    proxy.add_argument(
        "-t", "--transport", choices=("stdio", "http"), default="stdio", help="stdio (default) or streamable HTTP"
    )
    who = proxy.add_mutually_exclusive_group()
    who.add_argument(
        "-u",
        "--user",
        metavar="USER",
        help="stdio: the end user's external id (env BRIDGE_USER), resolved through Omni",
    )
    who.add_argument("--user-id", metavar="ID", help="stdio: an Omni user id, used as is (env MCP_USER_ID)")
    proxy.add_argument(
        "-s", "--sandbox", action="store_true", help="use an in-process sandbox instead of OMNI_BASE_URL"
    )
    proxy.add_argument(
        "--shape-results",
        action="store_true",
        help="cut large results to the token budget and offer read_result (default: pass results through)",
    )
    add_listen_options(proxy, port=8766, prefix="http: ")
    proxy.add_argument("--path", metavar="PATH", default="/mcp", help="http: where MCP is served (default /mcp)")
    proxy.add_argument(
        "--user-header",
        metavar="HEADER",
        # default: the proxy's own DEFAULT_USER_HEADER, read when it runs (it is in the MCP-heavy part)
        help="http: request header naming the end user's external id (default X-Bridge-User)",
    )
    proxy.add_argument(
        "--service-key",
        metavar="KEY",
        action="append",
        default=[],
        help="http: a bearer key callers may send (repeatable; 16 characters at least); prefer env "
        "BRIDGE_SERVICE_KEYS (name:key pairs, comma-separated, as for `omni-bridge serve`)",
    )
    proxy.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the proxy until the client hangs up (stdio) or Ctrl-C (http); 2 for a configuration problem."""
    from omni_bridge.agent import OmniConnection  # the MCP client and the sandbox: loaded to run only
    from omni_bridge.config import load_settings

    env = os.environ
    if env.get("DEBUG", "").strip().lower() in _TRUE:
        logging.getLogger("omni_bridge").setLevel(logging.DEBUG)
    if env.get("MCP_USER_REQUIRED", "").strip().lower() in {"0", "false", "no", "off"}:
        log.warning("MCP_USER_REQUIRED=false is ignored: the proxy always acts for one named user")
    try:
        settings = load_settings()
        connection = OmniConnection.from_settings(settings, sandbox=args.sandbox, **_drop_in(env, args.sandbox))
        if args.transport == "stdio":
            return asyncio.run(_stdio(connection, args, env))
        keys = _service_keys(settings, args.service_key)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_http(connection, args, keys))
        return 0
    except (ConfigError, IdentityError) as exc:
        print(f"omni-bridge mcp-proxy: {exc}", file=sys.stderr)
        return 2
    except OmniError as exc:
        print(f"omni-bridge mcp-proxy: Omni could not be reached: {exc}", file=sys.stderr)
        return 1


def _drop_in(env: Mapping[str, str], sandbox: bool) -> dict[str, Any]:
    """Constructor overrides from `@omni-co/mcp`'s variables (`MCP_*`), which win over `OMNI_*`."""
    overrides: dict[str, Any] = {}
    if not sandbox:
        if url := env.get("MCP_SERVER_URL", "").strip():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    "MCP_SERVER_URL: must be Omni's MCP endpoint URL, e.g. https://acme.omniapp.co/mcp/https"
                )
            overrides.update(mcp_url=url, base_url=f"{parts.scheme}://{parts.netloc}")
        if key := env.get("MCP_API_KEY", "").strip():
            overrides["api_key"] = key
    if model_id := env.get("MCP_MODEL_ID", "").strip():
        overrides["model_id"] = model_id
    if topic := env.get("MCP_TOPIC_NAME", "").strip():
        overrides["topic_name"] = topic
    return overrides


async def _stdio(connection: OmniConnection, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from omni_bridge.integrations import McpProxy

    async with connection:
        key = await _stdio_user(connection, args, env)
        log.info("serving MCP on stdio for user %r", key)
        await McpProxy(connection, shape_results=args.shape_results).run_stdio(key)
    return 0


async def _stdio_user(connection: OmniConnection, args: argparse.Namespace, env: Mapping[str, str]) -> SessionKey:
    """The one user a stdio proxy acts for: a flag first, then `BRIDGE_USER`, then `MCP_USER_ID`; never a default."""
    external_id = args.user or (None if args.user_id else env.get("BRIDGE_USER", "").strip() or None)
    user_id = args.user_id or (None if args.user else env.get("MCP_USER_ID", "").strip() or None)
    if external_id and user_id:
        raise ConfigError("BRIDGE_USER and MCP_USER_ID are both set: name the user once (an external id or an Omni id)")
    if external_id:
        return connection.session_key(await connection.resolve(external_id))
    if user_id:
        return connection.key(user_id)
    raise ConfigError(
        "no end user: the stdio proxy acts for one user and there is no default; pass --user <external id> "
        "(or set BRIDGE_USER), or set MCP_USER_ID to an Omni user id"
    )


def _service_keys(settings: Settings, flags: Sequence[str]) -> list[str]:
    """The keys HTTP callers may send: `--service-key` values, then `BRIDGE_SERVICE_KEYS` (read as `serve` does)."""
    from omni_bridge.server import check_service_key, parse_service_keys

    keys = [key.strip() for key in flags]
    for number, key in enumerate(keys, start=1):
        check_service_key(key, where=f"--service-key #{number}")
    if settings.bridge_service_keys is not None:
        keys += [key for _, key in parse_service_keys(settings.bridge_service_keys.get_secret_value())]
    if not keys:
        raise ConfigError("BRIDGE_SERVICE_KEYS: the HTTP proxy needs at least one service key (or --service-key)")
    return keys


async def _http(connection: OmniConnection, args: argparse.Namespace, keys: list[str]) -> None:
    from omni_bridge._serving import serve_asgi
    from omni_bridge.integrations import DEFAULT_USER_HEADER, McpProxy, proxy_http_app

    user_header = args.user_header or DEFAULT_USER_HEADER
    async with connection:
        proxy = McpProxy(connection, shape_results=args.shape_results)
        app = proxy_http_app(proxy, service_keys=keys, path=args.path, user_header=user_header, host=args.host)
        async with serve_asgi(app, args.host, args.port) as url:
            where = "the in-process sandbox" if connection.sandbox is not None else connection.base_url
            print(f"omni-bridge MCP proxy on {url}{args.path} (streamable HTTP) in front of {where}", flush=True)
            print(f"  callers send: Authorization: Bearer <service key>, {user_header}: <external id>", flush=True)
            await asyncio.Event().wait()
