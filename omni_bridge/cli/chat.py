"""`omni-bridge chat`: the console agent, acting for one end user (the console itself is `cli.console`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from omni_bridge.cli.options import add_console_options, command_settings, examples

if TYPE_CHECKING:
    from omni_bridge.cli.options import Commands

__all__ = ["add_command", "run"]


def add_command(commands: Commands) -> None:
    """Register `chat` on the `omni-bridge` parser."""
    chat = commands.add_parser(
        "chat",
        help="the console agent: ask questions about your data as one end user",
        description="Chat with an agent in front of Omni, acting for one end user with their permissions. "
        "On a terminal: Tab completes commands and user names, history, multiline input (Esc+Enter, or a "
        "trailing backslash), a live status line; Ctrl-C stops an answer, Ctrl-D leaves. Through a pipe: each "
        "input line is answered in turn, in plain text. Type /help for the commands (/new, /user NAME, "
        "/engine claude|omni, /usage, /history, /conversations, /resume N, /quit); a number asks that follow-up.",
        epilog=examples(
            "# no Omni, no API key needed: the sandbox, as alice",
            "omni-bridge chat --sandbox",
            "omni-bridge chat -s -u bob -e omni",
            "# through a pipe: each line answered in turn",
            "printf 'revenue by region\\n/user bob\\nrevenue by region\\n' | omni-bridge chat",
            "# resume a conversation, on the Omni in OMNI_BASE_URL",
            "omni-bridge chat --user cust-42 --conversation conv_0123",
        ),
    )
    add_console_options(chat)
    chat.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Chat until the input ends, `/quit` or Ctrl-D."""
    # The agent (and the `anthropic` SDK under it) takes seconds to import: loaded when the command runs.
    from omni_bridge.cli.console.chat import Terminal, run_chat

    return run_chat(
        command_settings(sandbox=args.sandbox),
        user=args.user,
        engine=args.engine,
        conversation_id=args.conversation,
        terminal=Terminal.detect(sys.stdin, sys.stdout),
    )
