"""`omni-bridge demo`: ask sample questions as several embed users of the sandbox, each with their own rows.

Each user is resolved through `OmniConnection` and asked on their own pooled MCP session, as every command
acts for an end user; the sandbox's row-level security then gives each user their own numbers. Results are
drawn with the console's one table renderer (`cli.console.tables`), as `chat` and `ask` draw them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omni_bridge.cli.options import examples
from omni_bridge.exceptions import IdentityError

if TYPE_CHECKING:
    from rich.console import Console

    from omni_bridge.agent import OmniConnection
    from omni_bridge.cli.options import Commands
    from omni_bridge.tools import SessionKey

__all__ = ["SAMPLE_QUESTIONS", "add_command", "run"]

SAMPLE_QUESTIONS = (
    "total revenue last quarter",
    "revenue by region",
    "top 5 products by revenue in 2025",
    "orders by month in 2026",
    "average order value by category last 6 months",
)
DEFAULT_USERS = ("alice", "bob")
"""Two sandbox users in different regions, so their answers differ."""


def add_command(commands: Commands) -> None:
    """Register `demo` on the `omni-bridge` parser."""
    demo = commands.add_parser(
        "demo",
        help="ask sample questions as several embed users on the sandbox",
        description="Start the sandbox in-process and ask each question as each user, "
        "showing that row-level security gives each user their own numbers.",
        epilog=examples(
            "omni-bridge demo                   # five sample questions as alice and bob",
            'omni-bridge demo -u alice -u carol -q "revenue by region"',
        ),
    )
    demo.add_argument(
        "-u",
        "--user",
        metavar="USER",
        action="append",
        help="an embed user's external id (repeatable; default alice, bob)",
    )
    demo.add_argument(
        "-q",
        "--question",
        metavar="QUESTION",
        action="append",
        help="a question to ask (repeatable; default: five samples)",
    )
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """0 when every user was found (a question Omni could not answer is shown as an error), else 1."""
    return asyncio.run(_demo(args.user or DEFAULT_USERS, args.question or SAMPLE_QUESTIONS))


async def _demo(users: Sequence[str], questions: Sequence[str]) -> int:
    from omni_bridge.agent import OmniConnection  # the MCP client and the sandbox: loaded to run only
    from omni_bridge.cli.console.render import make_console
    from omni_bridge.config import load_settings

    styled = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    console = make_console(sys.stdout, terminal=styled)
    async with OmniConnection.from_settings(load_settings(), sandbox=True) as omni:
        console.print(f"omni-bridge demo: the embedded Omni sandbox at {omni.base_url}", soft_wrap=True)
        for external_id in users:
            try:
                identity = await omni.resolve(external_id)
            except IdentityError:
                console.print(f"\nNo embed user with external id {external_id!r}.", soft_wrap=True)
                return 1
            name = identity.display_name or external_id
            console.print(
                f"\n=== As {name} (external id {external_id!r}, Omni user {identity.user_id})",
                style="bold",
                soft_wrap=True,
            )
            await _ask_as(omni, omni.session_key(identity), questions, console, styled=styled)
    return 0


async def _ask_as(
    omni: OmniConnection, key: SessionKey, questions: Sequence[str], console: Console, *, styled: bool
) -> None:
    from omni_bridge.cli.console.tables import result_table

    for question in questions:
        result = await omni.pool.call_tool(key, "getData", {"prompt": question})
        console.print(f"\n? {question}", style="bold", soft_wrap=True)
        if result.is_error or result.structured_content is None:
            text = result.content[0].text if result.content and result.content[0].type == "text" else ""
            console.print(f"  (error) {text}", style="red", soft_wrap=True)
            continue
        data = result.structured_content
        header, *rows = list(csv.reader(io.StringIO(data["csv"])))
        shown = f"{data['rowCount']} of {data['totalRowCount']}" if data["truncated"] else data["rowCount"]
        table = result_table(header, rows, styled=styled, limit=12)
        if table is not None:
            console.print(table)
        console.print(f"  topic {data['topicName']}, {shown} row(s)", style="dim", soft_wrap=True)
