"""The `omni-bridge` command.

```
omni-bridge chat [--sandbox] [--user alice] [--engine claude|omni] [--conversation ID]   the console agent
omni-bridge ask "question" [--sandbox] [--user alice] [--engine ...] [--json]            one question
omni-bridge serve [--sandbox] [--host] [--port]        the HTTP service (threads API, AI jobs, web chat page)
omni-bridge mcp-proxy [--transport stdio|http] [--user] an MCP server in front of Omni, per end user
omni-bridge sandbox [--host 127.0.0.1] [--port 8765]   run the local Omni look-alike
omni-bridge doctor [--sandbox]                          show the effective settings and check Omni answers
omni-bridge demo [--user alice --user bob]              ask sample questions as several users (sandbox)
```

argparse keeps the CLI dependency-free; each command is a small function returning an exit code
(2 for a bad option or setting). The console agent itself lives in `omni_bridge._console`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from omni_bridge import __version__
from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import ConfigError, IdentityError
from omni_bridge.integrations._proxy_cli import add_commands as add_proxy_commands
from omni_bridge.sandbox import MCP_PATH, Sandbox, SandboxConfig
from omni_bridge.server._cli import add_commands as add_serve_commands
from omni_bridge.tools import mcp_headers

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


async def _doctor(settings: Settings, force_sandbox: bool) -> int:
    print("Effective configuration (secrets hidden):")
    for name, value in settings.describe():
        print(f"  {name:<28} {value}")
    print(f"  {'(engine that answers)':<28} {settings.effective_engine()}")
    print()
    ok = True
    async with open_target(settings, force_sandbox=force_sandbox) as target:
        where = "embedded sandbox " + target.base_url if target.sandbox else target.base_url
        print(f"Checking Omni at {where}")
        timeout = httpx2.Timeout(settings.omni_timeout_seconds)
        async with httpx2.AsyncClient(base_url=target.base_url, timeout=timeout) as http:
            try:
                response = await http.get("/api/v1/models", headers={"Authorization": f"Bearer {target.api_key}"})
            except httpx2.HTTPError as exc:
                print(f"  ✗ REST: cannot reach {target.base_url}: {type(exc).__name__}")
                return 1
            if response.status_code == 200:
                models = response.json().get("records", [])
                print(f"  ✓ REST: key accepted, {len(models)} model(s): " + ", ".join(m["name"] for m in models))
            else:
                ok = False
                print(f"  ✗ REST: {response.status_code} {_detail(response)}")
        try:
            tools = await _list_tools(target, settings)
        except (MCPError, OSError, BaseExceptionGroup) as exc:
            ok = False
            print(f"  ✗ MCP: {target.base_url}{settings.omni_mcp_path}: {_describe_error(exc)}")
        else:
            print(f"  ✓ MCP: {len(tools)} tool(s): {', '.join(tools)}")
    print("All checks passed." if ok else "Some checks failed.")
    return 0 if ok else 1


async def _list_tools(target: Target, settings: Settings) -> list[str]:
    headers = mcp_headers(
        target.api_key,
        user_id=None,
        model_id=settings.omni_model_id,
        topic_name=settings.omni_topic_name,
        query_all_views=settings.omni_query_all_views,
    )
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(settings.omni_timeout_seconds)) as http:
        transport = streamable_http_client(f"{target.base_url}{settings.omni_mcp_path}", http_client=http)
        mode = "2026-07-28" if settings.omni_mcp_protocol == "modern" else settings.omni_mcp_protocol
        async with Client(transport, mode=mode) as client:
            return [tool.name for tool in (await client.list_tools()).tools]


def _detail(response: httpx2.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:200]))
    except ValueError:
        return response.text[:200]


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe_error(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def cmd_doctor(args: argparse.Namespace) -> int:
    return asyncio.run(_doctor(load_settings(), args.sandbox))


# --- demo ------------------------------------------------------------------------------------------------


async def _demo(users: Sequence[str], questions: Sequence[str]) -> int:
    settings = load_settings()
    async with open_target(settings, force_sandbox=True) as target:
        print(f"omni-bridge demo: the embedded Omni sandbox at {target.base_url}")
        async with httpx2.AsyncClient(base_url=target.base_url, timeout=30) as http:
            auth = {"Authorization": f"Bearer {target.api_key}"}
            for external_id in users:
                found = await http.get(
                    "/api/scim/v2/embed/users", params={"filter": f'embedExternalId eq "{external_id}"'}, headers=auth
                )
                found.raise_for_status()
                resources = found.json()["Resources"]
                if not resources:
                    print(f"\nNo embed user with external id {external_id!r}.")
                    return 1
                user_id = resources[0]["id"]
                print(f"\n=== As {resources[0]['displayName']} (external id {external_id!r}, Omni user {user_id})")
                await _ask_as(target, user_id, questions)
    return 0


async def _ask_as(target: Target, user_id: str, questions: Sequence[str]) -> None:
    headers = mcp_headers(target.api_key, user_id=user_id)
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(f"{target.base_url}{MCP_PATH}", http_client=http)) as client:
            for question in questions:
                result = await client.call_tool("getData", {"prompt": question})
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    sandbox.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
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
        description="Print the configuration (secrets hidden) and check REST and MCP.",
    )
    doctor.add_argument("--sandbox", action="store_true", help="check an in-process sandbox instead of OMNI_BASE_URL")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        code: int = args.handler(args)
    except (ConfigError, IdentityError) as exc:
        print(f"omni-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside an answer (starting up, say): leave quietly, as shells expect
        print(file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
