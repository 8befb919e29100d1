"""What the `omni-bridge` commands share: the parser class, the option types and options, the settings read.

Light on purpose: `omni-bridge --help` builds every command's parser from this module, so it imports nothing
beyond argparse and the standard library (the settings, and pydantic under them, load when a command reads them).

The conventions every command's help follows: descriptions wrapped to the terminal (`HelpFormatter`), an
`examples:` epilog (`examples`) with each line at most 78 columns, a short option for what is typed often
(`-u USER`, `-s`, `-p PORT`, `-v`; `-V` for the version), one metavar per kind of value (`USER` for an end user's
external id, `HOST`, `PORT`, `ID`, `URL`, `N`, `DIR`, `SECONDS`), and a mistyped command, option or choice answered
with the closest one (`Parser`).
"""

from __future__ import annotations

import argparse
import difflib
import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, get_args

from omni_bridge.types import EngineName

if TYPE_CHECKING:
    from typing import TypeAlias

    from omni_bridge.config import Settings

__all__ = [
    "Commands",
    "HelpFormatter",
    "Parser",
    "add_console_options",
    "add_listen_options",
    "add_sandbox_option",
    "command_settings",
    "examples",
    "port_number",
]

_MAX_WIDTH = 100
"""Help is wrapped to the terminal, but no wider than this: long lines are hard to read."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with descriptions and epilogs wrapped paragraph by paragraph, and indented lines (the
    examples) kept as written; at most `_MAX_WIDTH` columns wide."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 28, width: int | None = None):
        if width is None:
            width = min(shutil.get_terminal_size().columns, _MAX_WIDTH) - 2
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                lines.append(super(HelpFormatter, self)._fill_text(" ".join(paragraph), width, indent))
                paragraph.clear()

        for line in text.splitlines():
            if line.strip() and not line.startswith(" "):
                paragraph.append(line.strip())
                continue
            flush()
            lines.append(indent + line if line.strip() else "")
        flush()
        return "\n".join(lines)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        # `-u, --user USER` rather than argparse's `-u USER, --user USER` (Python 3.13's form too)
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        return (
            ", ".join(action.option_strings)
            + " "
            + self._format_args(action, self._get_default_metavar_for_optional(action))
        )


def examples(*lines: str) -> str:
    """A command's epilog: `examples:` and each line indented (a comment line says what the next one does)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class Parser(argparse.ArgumentParser):
    """argparse with a bad option told in one line (the usage is one `--help` away; exit 2), wrapped help, and a
    suggestion for a mistyped command, choice or option (`omni-bridge chta`: did you mean chat?).

    Python 3.14's `suggest_on_error` suggests choices the same way; this is for 3.11 to 3.13. It hooks
    `_check_value`, the one method argparse checks a choice in (3.14's own suggestion lives there too).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(choice) for choice in action.choices]
            message = f"invalid choice: {value!r} (choose from {', '.join(choices)})"
            if guess := _closest(str(value), choices):
                message = f"invalid choice: {value!r}; did you mean {guess}? (choose from {', '.join(choices)})"
            raise argparse.ArgumentError(action, message)

    def parse_known_args(  # type: ignore[override]  # typeshed's overloads; this is the one form argparse calls
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        # argparse would say "unrecognized arguments"; name the closest option too. A subcommand's parser runs
        # this on its own arguments, so the options it suggests from are that command's.
        options = [option for action in self._actions for option in action.option_strings]
        unknown = [arg.partition("=")[0] for arg in extras if arg.startswith("-") and arg != "-"]
        guesses = {arg: guess for arg in unknown if (guess := _closest(arg, options))}
        if len(guesses) == 1:
            self.error(f"unrecognized arguments: {' '.join(extras)}; did you mean {next(iter(guesses.values()))}?")
        if guesses:
            said = ", ".join(f"{guess} for {arg}" for arg, guess in guesses.items())
            self.error(f"unrecognized arguments: {' '.join(extras)}; did you mean {said}?")
        return parsed, extras


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


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def add_sandbox_option(parser: argparse.ArgumentParser) -> None:
    """`-s/--sandbox`: the embedded sandbox, whatever OMNI_BASE_URL says."""
    parser.add_argument(
        "-s",
        "--sandbox",
        action="store_true",
        help="start the embedded Omni sandbox in-process and use it, even when OMNI_BASE_URL is set",
    )


def add_listen_options(parser: argparse.ArgumentParser, *, port: int, prefix: str = "") -> None:
    """`--host HOST` and `-p/--port PORT` of a command that listens; `prefix` starts their help (`http: `)."""
    parser.add_argument(
        "--host", metavar="HOST", default="127.0.0.1", help=f"{prefix}interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "-p",
        "--port",
        metavar="PORT",
        type=port_number,
        default=port,
        help=f"{prefix}port (default {port}; 0 picks a free one)",
    )


def add_console_options(parser: argparse.ArgumentParser) -> None:
    """The options `chat` and `ask` share."""
    add_sandbox_option(parser)
    parser.add_argument(
        "-u",
        "--user",
        metavar="USER",
        help="the end user to act for (their external id); default alice on the sandbox, required on a real Omni",
    )
    parser.add_argument(
        "-e",
        "--engine",
        choices=get_args(EngineName),
        help="who answers a new conversation: claude (needs ANTHROPIC_API_KEY) or omni (Omni's own AI); "
        "default BRIDGE_ENGINE (auto: claude with a key, else omni)",
    )
    parser.add_argument(
        "-c",
        "--conversation",
        metavar="ID",
        help="continue this conversation (kept in BRIDGE_DATA_DIR); an unknown id starts a conversation with it",
    )
