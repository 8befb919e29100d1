"""`omni-bridge sandbox`: run the local Omni look-alike (MCP + REST, demo data) until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from omni_bridge import __version__
from omni_bridge.cli.options import add_listen_options, examples

if TYPE_CHECKING:
    from omni_bridge.cli.options import Commands

__all__ = ["add_command", "run"]


def add_command(commands: Commands) -> None:
    """Register `sandbox` on the `omni-bridge` parser."""
    sandbox = commands.add_parser(
        "sandbox",
        help="run the local Omni look-alike (MCP + REST, demo data)",
        description="Run the Omni sandbox (MCP and REST, with demo data and embed users) until Ctrl-C, for the "
        "bridge, an MCP client or your own code to talk to as they would to Omni. It prints its URLs and keys.",
        epilog=examples(
            "omni-bridge sandbox                # on http://127.0.0.1:8765",
            "omni-bridge sandbox -p 0 --memory  # any free port; jobs forgotten on stop",
            "# in another shell: the bridge on it, as a real Omni",
            "OMNI_BASE_URL=http://127.0.0.1:8765 OMNI_API_KEY=... omni-bridge chat",
        ),
    )
    add_listen_options(sandbox, port=8765)
    sandbox.add_argument(
        "--job-step-seconds",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="time each AI job state lasts, so polling clients see progress (default 1.0)",
    )
    sandbox.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="where AI jobs and conversations are kept across restarts (default: BRIDGE_DATA_DIR/sandbox)",
    )
    sandbox.add_argument(
        "--memory", action="store_true", help="keep AI jobs and conversations in memory only (forgotten on stop)"
    )
    sandbox.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve the sandbox until Ctrl-C, after printing where it listens and the keys it takes."""
    from omni_bridge.sandbox import MCP_PATH, Sandbox, SandboxConfig  # MCP and starlette: loaded to run only

    data_dir = None if args.memory else (args.data_dir or _default_data_dir())
    config = SandboxConfig(job_step_seconds=args.job_step_seconds, data_dir=data_dir)
    sandbox = Sandbox(config, host=args.host)

    async def serve() -> None:
        async with sandbox.serve(args.host, args.port) as url:
            print(f"Omni sandbox {__version__} listening on {url}")
            print(
                f"  MCP endpoint      {url}{MCP_PATH}   (streamable HTTP; legacy sessions and 2026-07-28; also at /mcp)"
            )
            print(f"  REST API          {url}/api/v1/…  and SCIM at {url}/api/scim/v2/embed/users")
            print(f"  organization key  {config.org_key}   (may act for any user: userId / X-MCP-User-ID)")
            print(f"  personal token    {config.personal_token}   (acts as Dana Analyst only)")
            print(
                f"  embed MCP tokens  POST {url}/oauth/token   (JWT-bearer grant; demo embed secret "
                f"{config.embed_secret})"
            )
            print(
                "  embed users       "
                + ", ".join(
                    f"{u.external_id} ({u.attributes.get('region') or 'no region'}"
                    + (", Viewer)" if u.role == "VIEWER" else ")")
                    for u in sandbox.directory.embed_users()
                )
            )
            print("  sandbox docs      " + f"{url}/docs/sandbox-overview")
            print(f"  AI jobs kept in   {data_dir if data_dir is not None else 'memory (forgotten on stop)'}")
            print("Point the bridge at it with  OMNI_BASE_URL=" + url + f"  OMNI_API_KEY={config.org_key}")
            print("Press Ctrl-C to stop.", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def _default_data_dir() -> Path:
    """`BRIDGE_DATA_DIR/sandbox`, where the embedded sandbox keeps its jobs too (so both see the same ones)."""
    from omni_bridge.agent import SANDBOX_DIR
    from omni_bridge.config import load_settings

    return load_settings().bridge_data_dir / SANDBOX_DIR
