"""What the `omni-bridge` commands share: the parser class, the option types and options, the settings read.

Light on purpose: `omni-bridge --help` builds every command's parser from this module, so it imports nothing
beyond argparse (the settings, and pydantic under them, load when a command reads them).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NoReturn, get_args

from omni_bridge.types import EngineName

if TYPE_CHECKING:
    from typing import TypeAlias

    from omni_bridge.config import Settings

__all__ = ["Commands", "Parser", "add_console_options", "command_settings", "port_number"]


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option told in one line (the usage is one `--help` away); exit 2 as before."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[Parser]
    """The `omni-bridge` parser's subcommands, on which each command module registers its own parser."""


def port_number(text: str) -> int:
    """The `--port` option's type: a TCP port, 0 to 65535 (0: any free one), checked as options are read."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def command_settings(*, sandbox: bool) -> Settings:
    """The settings from the environment; with `sandbox`, aimed at the embedded sandbox whatever is set.

    Raises:
        ConfigError: a setting is wrong (the message names it).
    """
    from omni_bridge.config import load_settings

    settings = load_settings()
    if sandbox and not settings.uses_sandbox:
        # Everything that described the configured Omni means nothing to the sandbox.
        return load_settings(omni_base_url=None, omni_api_key=None, omni_model_id=None, omni_topic_name=None)
    return settings


def add_console_options(parser: argparse.ArgumentParser) -> None:
    """The options `chat` and `ask` share."""
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="start the embedded Omni sandbox in-process and use it, even when OMNI_BASE_URL is set",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="the end user to act for (their external id); default alice on the sandbox, required on a real Omni",
    )
    parser.add_argument(
        "--engine",
        choices=get_args(EngineName),
        help="who answers a new conversation: claude (needs ANTHROPIC_API_KEY) or omni (Omni's own AI); "
        "default BRIDGE_ENGINE (auto: claude with a key, else omni)",
    )
    parser.add_argument(
        "--conversation",
        metavar="ID",
        help="continue this conversation (kept in BRIDGE_DATA_DIR); an unknown id starts a conversation with it",
    )
