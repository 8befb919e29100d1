"""The `omni-bridge` command.

```
omni-bridge chat [--sandbox] [--user alice] [--engine claude|omni] [--conversation ID]   the console agent
omni-bridge ask "question" [--sandbox] [--user alice] [--engine ...] [--json]            one question
omni-bridge serve [--sandbox] [--host] [--port]        the HTTP service (threads API, AI jobs, web chat page)
omni-bridge mcp-proxy [--transport stdio|http] [--user] an MCP server in front of Omni, per end user
omni-bridge sandbox [--host 127.0.0.1] [--port 8765]   run the local Omni look-alike
omni-bridge doctor [--sandbox] [--user alice]          show the effective settings and check Omni answers
omni-bridge demo [--user alice --user bob]              ask sample questions as several users (sandbox)
```

argparse keeps the CLI dependency-free; each command is a small function returning an exit code. `main` owns
what every command shares: logging (`-v`, `--log-level` or `BRIDGE_LOG_LEVEL`; on stderr, never stdout) and
the exit codes of a bad option, setting or port (2, one line), Ctrl-C (130) and a reader that went away
(`| head`: 141, as for a Unix tool killed by SIGPIPE, and nothing printed). The console agent itself lives in
`omni_bridge._console`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

from omni_bridge import __version__
from omni_bridge._serving import port_number
from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import ConfigError, IdentityError, OmniError, OmniHTTPError
from omni_bridge.integrations._connection import OmniConnection
from omni_bridge.integrations._proxy_cli import add_commands as add_proxy_commands
from omni_bridge.sandbox import MCP_PATH, Sandbox, SandboxConfig
from omni_bridge.server._cli import add_commands as add_serve_commands
from omni_bridge.tools import OmniRestClient, SessionKey

__all__ = ["main"]

SAMPLE_QUESTIONS = (
    "total revenue last quarter",
    "revenue by region",
    "top 5 products by revenue in 2025",
    "orders by month in 2026",
    "average order value by category last 6 months",
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where Omni is, and the key to use: a configured instance, or an in-process sandbox."""

    base_url: str
    api_key: str
    sandbox: Sandbox | None


@contextlib.asynccontextmanager
async def open_target(settings: Settings, *, force_sandbox: bool = False) -> AsyncIterator[Target]:
    """The configured Omni, or (when none is configured, or `force_sandbox`) a sandbox started in-process."""
    if settings.uses_sandbox or force_sandbox:
        sandbox = Sandbox()
        async with sandbox.serve() as url:
            yield Target(url, sandbox.config.org_key, sandbox)
        return
    if settings.omni_api_key is None:
        raise ConfigError("OMNI_API_KEY: required when OMNI_BASE_URL is set (an organization API key)")
    yield Target(str(settings.omni_base_url).rstrip("/"), settings.omni_api_key.get_secret_value(), None)


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


# --- sandbox ---------------------------------------------------------------------------------------------


def cmd_sandbox(args: argparse.Namespace) -> int:
    config = SandboxConfig(job_step_seconds=args.job_step_seconds)
    sandbox = Sandbox(config, host=args.host)

    async def run() -> None:
        async with sandbox.serve(args.host, args.port) as url:
            print(f"Omni sandbox {__version__} listening on {url}")
            print(f"  MCP endpoint      {url}{MCP_PATH}   (streamable HTTP; legacy sessions and 2026-07-28)")
            print(f"  REST API          {url}/api/v1/…  and SCIM at {url}/api/scim/v2/embed/users")
            print(f"  organization key  {config.org_key}   (may act for any user: userId / X-MCP-User-ID)")
            print(f"  personal token    {config.personal_token}   (acts as Dana Analyst only)")
            print(
                "  embed users       "
                + ", ".join(
                    f"{u.external_id} ({u.attributes.get('region') or 'no region'})"
                    for u in sandbox.directory.embed_users()
                )
            )
            print("  sandbox docs      " + f"{url}/docs/sandbox-overview")
            print("Point the bridge at it with  OMNI_BASE_URL=" + url + f"  OMNI_API_KEY={config.org_key}")
            print("Press Ctrl-C to stop.", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


# --- doctor ----------------------------------------------------------------------------------------------


async def _doctor(settings: Settings, force_sandbox: bool, user: str | None) -> int:
    print("Effective configuration (secrets hidden):")
    for name, value in settings.describe():
        print(f"  {name:<28} {value}")
    print(f"  {'(engine that answers)':<28} {settings.effective_engine()}")
    print()
    async with open_target(settings, force_sandbox=force_sandbox) as target:
        where = "embedded sandbox " + target.base_url if target.sandbox else target.base_url
        print(f"Checking Omni at {where}")
        ok = await _check_rest(settings, target)
        if ok is None:
            return 1
        if user is None:
            # Omni's tools differ per user, and nothing in the bridge ever lists or calls them as the key's owner.
            sandbox_users = target.sandbox.directory.embed_users() if target.sandbox else []
            users = [u.external_id for u in sandbox_users if u.external_id]
            example = f" (on the sandbox: {', '.join(users)})" if users else ""
            print("  · MCP: not checked: Omni's tools are listed for one end user, never for the key's owner")
            again = "omni-bridge doctor --sandbox" if force_sandbox else "omni-bridge doctor"
            print(f"    check them as one: {again} --user <external id>{example}")
        else:
            ok = await _check_user(settings, target, user) and ok
    print("All checks passed." if ok else "Some checks failed.")
    return 0 if ok else 1


async def _check_rest(settings: Settings, target: Target) -> bool | None:
    """The key against Omni's REST API (its models); `None` when Omni cannot be reached at all."""
    rest = OmniRestClient(target.base_url, target.api_key, timeout=settings.omni_timeout_seconds, max_retries=0)
    async with rest:
        try:
            models = await rest.list_models()
        except OmniHTTPError as exc:
            print(f"  ✗ REST: {exc}")
            return False
        except OmniError as exc:
            print(f"  ✗ REST: cannot reach {target.base_url}: {exc}")
            return None
    print(f"  ✓ REST: key accepted, {len(models)} model(s): " + ", ".join(m.name or m.id for m in models))
    return True


def _connection(settings: Settings, target: Target) -> OmniConnection:
    """The library's connection to `target` (its identity resolver and session pool), as every command uses."""
    mcp_path = MCP_PATH if target.sandbox else settings.omni_mcp_path
    return OmniConnection.from_settings(
        settings, base_url=target.base_url, api_key=target.api_key, mcp_url=target.base_url + mcp_path
    )


async def _check_user(settings: Settings, target: Target, user: str) -> bool:
    """The end user `user` (an external id) resolved through Omni, then their MCP tools, as they see them."""
    async with _connection(settings, target) as omni:
        try:
            identity = await omni.resolve(user)
        except (IdentityError, OmniError) as exc:
            print(f"  ✗ user {user!r}: {exc}")
            return False
        named = f" ({identity.display_name})" if identity.display_name else ""
        print(f"  ✓ user {user!r}{named} is Omni user {identity.user_id}")
        try:
            tools = await omni.pool.list_tools(omni.key(identity.user_id))
        except OmniError as exc:
            print(f"  ✗ MCP as {user!r}: {omni.mcp_url}: {exc}")
            return False
    print(f"  ✓ MCP as {user!r}: {len(tools)} tool(s): {', '.join(tool.name for tool in tools)}")
    return True


def cmd_doctor(args: argparse.Namespace) -> int:
    return asyncio.run(_doctor(load_settings(), args.sandbox, args.user))


# --- demo ------------------------------------------------------------------------------------------------


async def _demo(users: Sequence[str], questions: Sequence[str]) -> int:
    settings = load_settings()
    async with open_target(settings, force_sandbox=True) as target, _connection(settings, target) as omni:
        print(f"omni-bridge demo: the embedded Omni sandbox at {target.base_url}")
        for external_id in users:
            try:
                identity = await omni.resolve(external_id)
            except IdentityError:
                print(f"\nNo embed user with external id {external_id!r}.")
                return 1
            name = identity.display_name or external_id
            print(f"\n=== As {name} (external id {external_id!r}, Omni user {identity.user_id})")
            await _ask_as(omni, omni.key(identity.user_id), questions)
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


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args.user or ["alice", "bob"], args.question or SAMPLE_QUESTIONS))


# --- chat and ask ----------------------------------------------------------------------------------------


# The agent (and the `anthropic` SDK under it) takes seconds to import on a busy machine: the commands that
# need it import it when they run, so `--help`, `sandbox` and `doctor` start at once.


def cmd_chat(args: argparse.Namespace) -> int:
    from omni_bridge._console import Terminal, console_settings, run_chat

    settings = console_settings(sandbox=args.sandbox)
    return run_chat(
        settings,
        user=args.user,
        engine=args.engine,
        conversation_id=args.conversation,
        terminal=Terminal.detect(sys.stdin, sys.stdout),
    )


def cmd_ask(args: argparse.Namespace) -> int:
    from omni_bridge._console import console_settings, run_ask

    if not args.question.strip():
        raise ConfigError('the question is empty; ask something, e.g. omni-bridge ask "revenue by region"')
    settings = console_settings(sandbox=args.sandbox)
    return run_ask(
        settings,
        question=args.question,
        user=args.user,
        engine=args.engine,
        conversation_id=args.conversation,
        as_json=args.json,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def _console_options(parser: argparse.ArgumentParser) -> None:
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
        choices=("claude", "omni"),
        help="who answers a new conversation: claude (needs ANTHROPIC_API_KEY) or omni (Omni's own AI); "
        "default BRIDGE_ENGINE (auto: claude with a key, else omni)",
    )
    parser.add_argument(
        "--conversation",
        metavar="ID",
        help="continue this conversation (kept in BRIDGE_DATA_DIR); an unknown id starts a conversation with it",
    )


# --- entry point -----------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option told in one line (the usage is one `--help` away); exit 2 as before."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(  # its subcommands' parsers are of the same class, wherever they are added
        prog="omni-bridge",
        description="Put an LLM agent in front of Omni Analytics data, acting for each end user. "
        "Settings come from OMNI_*, ANTHROPIC_* and BRIDGE_* variables or a .env file; "
        "with no OMNI_BASE_URL the embedded sandbox stands in for Omni.",
    )
    parser.add_argument("--version", action="version", version=f"omni-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser(
        "chat",
        help="the console agent: ask questions about your data as one end user",
        description="Chat with an agent in front of Omni, acting for one end user with their permissions. "
        "On a terminal: line editing, history, a live status line; Ctrl-C stops an answer, Ctrl-D leaves. "
        "Through a pipe: each input line is answered in turn, in plain text. Type /help for the commands "
        "(/new, /user NAME, /engine claude|omni, /usage, /quit); a number asks that follow-up.",
        epilog="examples:\n"
        "  omni-bridge chat --sandbox                      # no Omni, no API key needed: the sandbox as alice\n"
        "  omni-bridge chat --sandbox --user bob --engine omni\n"
        "  printf 'revenue by region\\n/user bob\\nrevenue by region\\n' | omni-bridge chat --sandbox\n"
        "  omni-bridge chat --user cust-42 --conversation conv_0123   # resume, on the Omni in OMNI_BASE_URL",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _console_options(chat)
    chat.set_defaults(handler=cmd_chat)

    ask = commands.add_parser(
        "ask",
        help="answer one question (streamed, or as JSON with --json)",
        description="Answer one question as one end user, streamed like in the chat. With --json, print "
        "one JSON object (the final message with its parts, plus conversation_id, engine, user, tool_calls "
        "and errors) and nothing else on stdout. Exit code: 0 completed, 1 errored, 2 bad option or setting.",
        epilog="examples:\n"
        '  omni-bridge ask "revenue by region" --sandbox\n'
        '  omni-bridge ask "top 5 products by revenue in 2025" --sandbox --user bob --json | jq .parts\n'
        '  omni-bridge ask "and by month?" --user cust-42 --conversation conv_0123',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ask.add_argument("question", help="the question, in plain words")
    _console_options(ask)
    ask.add_argument("--json", action="store_true", help="print the answer as one JSON object on stdout")
    ask.set_defaults(handler=cmd_ask)

    sandbox = commands.add_parser(
        "sandbox",
        help="run the local Omni look-alike (MCP + REST, demo data)",
        description="Run the Omni sandbox until Ctrl-C.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=port_number, default=8765, help="port (default 8765; 0 picks a free one)")
    sandbox.add_argument(
        "--job-step-seconds",
        type=float,
        default=1.0,
        help="time each AI job state lasts, so polling clients see progress (default 1.0)",
    )
    sandbox.set_defaults(handler=cmd_sandbox)

    doctor = commands.add_parser(
        "doctor",
        help="print the effective settings and check that Omni answers",
        description="Print the configuration (secrets hidden) and check Omni's REST API with the key. With "
        "--user, also find that end user in Omni and list the MCP tools they get, acting for them as every "
        "command does; without it MCP is not checked, since the bridge never calls Omni's tools as the key's owner.",
        epilog="examples:\n"
        "  omni-bridge doctor                          # settings and the REST API of OMNI_BASE_URL\n"
        "  omni-bridge doctor --user cust-42           # ... and cust-42's MCP tools\n"
        "  omni-bridge doctor --sandbox --user alice   # the in-process sandbox, as alice",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("--sandbox", action="store_true", help="check an in-process sandbox instead of OMNI_BASE_URL")
    doctor.add_argument(
        "--user",
        metavar="EXTERNAL_ID",
        help="check MCP as this end user (their external id, resolved through Omni like in chat and ask)",
    )
    doctor.set_defaults(handler=cmd_doctor)

    demo = commands.add_parser(
        "demo",
        help="ask sample questions as several embed users on the sandbox",
        description="Start the sandbox in-process and ask each question as each user, "
        "showing that row-level security gives each user their own numbers.",
    )
    demo.add_argument("--user", action="append", help="embed user external id (repeatable; default alice, bob)")
    demo.add_argument("--question", action="append", help="question to ask (repeatable; default: five samples)")
    demo.set_defaults(handler=cmd_demo)

    add_serve_commands(commands)
    add_proxy_commands(commands)
    _log_options(parser, default=None)
    for command in commands.choices.values():  # also after the command: `omni-bridge ask -v "..."`
        _log_options(command, default=argparse.SUPPRESS)
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
        default=default,
        help="log level of omni-bridge and its HTTP servers; wins over -v and BRIDGE_LOG_LEVEL",
    )


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(args: argparse.Namespace) -> int:
    """--log-level, else -v/-vv, else BRIDGE_LOG_LEVEL (environment or .env), else WARNING."""
    if getattr(args, "log_level", None):
        return logging.getLevelNamesMapping()[args.log_level]
    verbose = getattr(args, "verbose", None) or 0
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    try:
        return logging.getLevelNamesMapping()[load_settings().bridge_log_level]
    except ConfigError:  # a bad setting: the command reports it, if it reads settings at all
        return logging.WARNING


def _configure_logging(level: int) -> None:
    # stderr: stdout carries the answers (and `ask --json`'s one JSON object). Only the bridge's own loggers and
    # uvicorn's follow the level; other libraries stay at WARNING (their DEBUG logs may show request headers).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for name in ("omni_bridge", "uvicorn"):
        logging.getLogger(name).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(_log_level(args))
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


if __name__ == "__main__":
    sys.exit(main())
