"""The `omni-bridge` command.

```
omni-bridge chat [--sandbox] [--user alice] [--engine claude|omni] [--conversation ID]   the console agent
omni-bridge ask "question" [--sandbox] [--user alice] [--engine ...] [--json]            one question
omni-bridge serve [--sandbox] [--host] [--port]        the HTTP service (threads API, AI jobs, web chat page)
omni-bridge mcp-proxy [--transport stdio|http] [--user] an MCP server in front of Omni, per end user
omni-bridge sandbox [--host 127.0.0.1] [--port 8765]   run the local Omni look-alike
omni-bridge doctor [--sandbox] [--user alice]          show the effective settings and check Omni answers
omni-bridge demo [--user alice --user bob]              ask sample questions as several users (sandbox)
omni-bridge prune [--days N] [--dry-run] [--store URL]  delete records older than the retention period
```

One module per command (`chat`, `ask`, `serve`, `mcp_proxy`, `sandbox`, `doctor`, `demo`, `prune`), each registering
its parser (`add_command`) and running it (`run`, returning an exit code); what they share is in `options`,
and the console agent behind `chat` and `ask` in `console`. A command module imports its heavy parts (the
agent, MCP, the sandbox, uvicorn) only when it runs, so `--help` and `--version` start at once.

`main` owns what every command shares: logging (`-v`, `--log-level` or `BRIDGE_LOG_LEVEL`; `--log-format json`
or `BRIDGE_LOG_FORMAT=json` for one JSON object per line; on stderr, never stdout) and the exit codes of a bad
option, setting or port (2, one line), Ctrl-C (130) and a reader that went away (`| head`: 141, as for a Unix
tool killed by SIGPIPE, and nothing printed). `omni-bridge` alone prints the
help on stderr and exits 2, as click (8.2 and later) and Typer do for a group called without its command: the
command was missing, so a script must not take it for success.

argparse, not click or Typer: the commands, their tests and `--help`'s start without any SDK were already on it,
and what it lacked for 3.11 (wrapping, typo suggestions) is a few lines in `options.Parser`; click would be one
more dependency of every install, and Typer two (with Rich's import on every `--help`). The help's conventions
are listed in `options`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from omni_bridge import __version__
from omni_bridge.cli import ask, chat, demo, doctor, mcp_proxy, prune, sandbox, serve
from omni_bridge.cli.options import Parser, examples
from omni_bridge.exceptions import ConfigError, IdentityError

__all__ = ["build_parser", "main"]

_COMMANDS = (chat, ask, sandbox, doctor, demo, serve, mcp_proxy, prune)
"""The command modules, in the order `--help` lists them."""

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser() -> argparse.ArgumentParser:
    """The `omni-bridge` parser, with every command's subparser (each one a `Parser` too)."""
    parser = Parser(
        prog="omni-bridge",
        description="Put an LLM agent in front of Omni Analytics data, acting for each end user. "
        "Settings come from OMNI_*, ANTHROPIC_* and BRIDGE_* variables or a .env file; "
        "with no OMNI_BASE_URL the embedded sandbox stands in for Omni. "
        "`omni-bridge COMMAND --help` tells more about each command.",
        epilog=examples(
            "# the console agent on the sandbox: no Omni, no API key",
            "omni-bridge chat --sandbox",
            'omni-bridge ask "revenue by region" --sandbox --json',
            "# the HTTP service and its chat page",
            "omni-bridge serve --sandbox",
            "# the settings in use, and Omni as one end user sees it",
            "omni-bridge doctor -u cust-42",
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"omni-bridge {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_command(commands)
    _log_options(parser, default=None)
    for subparser in commands.choices.values():  # also after the command: `omni-bridge ask -v "..."`
        _log_options(subparser, default=argparse.SUPPRESS)
    return parser


def _log_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    logs = parser.add_argument_group("logging (on stderr)")
    logs.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log more: -v for INFO, -vv for DEBUG (default: BRIDGE_LOG_LEVEL, else WARNING)",
    )
    logs.add_argument(
        "--log-level",
        type=str.upper,
        choices=_LOG_LEVELS,
        metavar="LEVEL",
        default=default,
        help=f"log level of omni-bridge and its HTTP servers ({', '.join(_LOG_LEVELS)}); "
        "wins over -v and BRIDGE_LOG_LEVEL",
    )
    logs.add_argument(
        "--log-format",
        type=str.lower,
        choices=("text", "json"),
        default=default,
        help="text lines, or json: one JSON object per line (default: BRIDGE_LOG_FORMAT, else text)",
    )


def _log_level(args: argparse.Namespace) -> int:
    """--log-level, else -v/-vv, else BRIDGE_LOG_LEVEL (environment or .env), else WARNING."""
    if getattr(args, "log_level", None):
        return logging.getLevelNamesMapping()[args.log_level]
    verbose = getattr(args, "verbose", None) or 0
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    from omni_bridge.config import load_settings  # pydantic: not for `--help` and `--version`

    try:
        return logging.getLevelNamesMapping()[load_settings().bridge_log_level]
    except ConfigError:  # a bad setting: the command reports it, if it reads settings at all
        return logging.WARNING


def _log_format(args: argparse.Namespace) -> str:
    """--log-format, else BRIDGE_LOG_FORMAT (environment or .env), else text."""
    if getattr(args, "log_format", None):
        return str(args.log_format)
    from omni_bridge.config import load_settings

    try:
        return load_settings().bridge_log_format
    except ConfigError:
        return "text"


def _configure_logging(level: int, log_format: str = "text") -> None:
    # stderr: stdout carries the answers (and `ask --json`'s one JSON object). Only the bridge's own loggers and
    # uvicorn's follow the level; other libraries stay at WARNING (their DEBUG logs may show request headers).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if log_format == "json":
        from omni_bridge._logs import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    for name in ("omni_bridge", "uvicorn"):
        logging.getLogger(name).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `omni-bridge` command with `argv` (default: the process's arguments); returns the exit code."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    _configure_logging(_log_level(args), _log_format(args))
    try:
        code: int = args.handler(args)
    except (ConfigError, IdentityError) as exc:
        print(f"omni-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside an answer (starting up, say): leave quietly, as shells expect
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read stdout went away (`| head`): stop without a word, like a Unix tool killed by SIGPIPE
        # (128 + 13). stdout now points at /dev/null, so the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code
