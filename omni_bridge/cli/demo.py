"""`omni-bridge demo`: ask sample questions as several embed users of the sandbox, each with their own rows.

Each user is resolved through `OmniConnection` and asked on their own pooled MCP session, as every command
acts for an end user; the sandbox's row-level security then gives each user their own numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omni_bridge.cli.options import examples
from omni_bridge.exceptions import IdentityError

if TYPE_CHECKING:
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
    from omni_bridge.config import load_settings

    async with OmniConnection.from_settings(load_settings(), sandbox=True) as omni:
        print(f"omni-bridge demo: the embedded Omni sandbox at {omni.base_url}")
        for external_id in users:
            try:
                identity = await omni.resolve(external_id)
            except IdentityError:
                print(f"\nNo embed user with external id {external_id!r}.")
                return 1
            name = identity.display_name or external_id
            print(f"\n=== As {name} (external id {external_id!r}, Omni user {identity.user_id})")
            await _ask_as(omni, omni.session_key(identity), questions)
    return 0


async def _ask_as(omni: OmniConnection, key: SessionKey, questions: Sequence[str]) -> None:
    for question in questions:
        result = await omni.pool.call_tool(key, "getData", {"prompt": question})
        print(f"\n? {question}")
        if result.is_error or result.structured_content is None:
            text = result.content[0].text if result.content and result.content[0].type == "text" else ""
            print(f"  (error) {text}")
            continue
        data = result.structured_content
        header, *rows = list(csv.reader(io.StringIO(data["csv"])))
        _print_table(header, rows)
        shown = f"{data['rowCount']} of {data['totalRowCount']}" if data["truncated"] else data["rowCount"]
        print(f"  topic {data['topicName']}, {shown} row(s)")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]], limit: int = 12) -> None:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows[:limit]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print(
            "  " + "  ".join(c.rjust(w) if n and _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True))
        )
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    if len(rows) > limit:
        print(f"  … {len(rows) - limit} more row(s)")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
