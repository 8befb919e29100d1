"""`omni-bridge ask`: answer one question as one end user, streamed or as one JSON object (`--json`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from omni_bridge.cli.options import add_console_options, command_settings, examples
from omni_bridge.exceptions import ConfigError

if TYPE_CHECKING:
    from omni_bridge.cli.options import Commands

__all__ = ["add_command", "run"]


def add_command(commands: Commands) -> None:
    """Register `ask` on the `omni-bridge` parser."""
    ask = commands.add_parser(
        "ask",
        help="answer one question (streamed, or as JSON with --json)",
        description="Answer one question as one end user, streamed like in the chat. With --json, print "
        "one JSON object (the final message with its parts, plus conversation_id, engine, user, tool_calls "
        "and errors) and nothing else on stdout. Exit code: 0 completed, 1 errored, 2 bad option or setting.",
        epilog=examples(
            'omni-bridge ask "revenue by region" --sandbox',
            'omni-bridge ask "top 5 products by revenue" -s -u bob --json | jq .parts',
            'omni-bridge ask "and by month?" --user cust-42 --conversation conv_0123',
        ),
    )
    ask.add_argument("question", metavar="QUESTION", help="the question, in plain words")
    add_console_options(ask)
    ask.add_argument("--json", action="store_true", help="print the answer as one JSON object on stdout")
    ask.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Answer the question; the exit code tells the outcome (see `cli.console.ask`)."""
    if not args.question.strip():
        raise ConfigError('the question is empty; ask something, e.g. omni-bridge ask "revenue by region"')
    # The agent (and the `anthropic` SDK under it) takes seconds to import: loaded when the command runs.
    from omni_bridge.cli.console.ask import run_ask

    return run_ask(
        command_settings(sandbox=args.sandbox),
        question=args.question,
        user=args.user,
        engine=args.engine,
        conversation_id=args.conversation,
        as_json=args.json,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
