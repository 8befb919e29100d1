"""`omni-bridge chat` run as a real command through a pipe: each line answered in turn, as the user of the moment."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import pytest

from omni_bridge.stores import STORE_FILE
from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ToolCall, text_reply, tool_then_answer
from tests.cli.console_helpers import clean_env, finish, revenue_by_region, run_cli, start_cli
from tests.conftest import Served

REVENUE = ToolCall("getData", {"prompt": "revenue by region"})


def tokens(usage: str, kind: str) -> int:
    """The count `/usage` printed for `kind` (`input`, `output`, `cache read`, `cache write`)."""
    found = re.search(rf"^  {kind} tokens +([\d,]+)$", usage, re.MULTILINE)
    assert found is not None, usage
    return int(found[1].replace(",", ""))


async def test_through_a_pipe_each_line_is_answered_as_the_user_of_the_moment(served: Served, tmp_path: Path) -> None:
    alice, bob = await revenue_by_region(served, "alice"), await revenue_by_region(served, "bob")
    stdin = "revenue by region\n/user bob\nrevenue by region\n/usage\n/quit\n"

    done = await run_cli("chat", "--sandbox", "--user", "alice", stdin=stdin, env=clean_env(tmp_path), cwd=tmp_path)

    assert done.code == 0, done.stderr
    header, rest = done.stdout.split("alice@omni> revenue by region\n", 1)
    assert "engine omni" in header and "user alice" in header and "embedded sandbox" in header
    as_alice, as_bob = rest.split("bob@omni> revenue by region\n", 1)
    assert alice["West"] in as_alice and "East" not in as_alice
    assert bob["East"] in as_bob and "West" not in as_bob
    assert "user bob" in as_alice.splitlines()[-2]  # `/user bob` said who answers now
    assert "Open in Omni: http://127.0.0.1:" in as_alice
    assert "input tokens" in as_bob and "bob@omni> /quit" in as_bob
    assert "\x1b" not in done.stdout  # a pipe gets plain text: no styles, no status line
    assert (tmp_path / STORE_FILE).exists()  # the one store file of BRIDGE_DATA_DIR (was conversations.db)


async def test_mistyped_commands_get_a_message_and_the_session_goes_on(tmp_path: Path) -> None:
    stdin = "/frobnicate\n/engine foo\n/engine claude\n/user\n/user nobody-at-all\n/help\n/quit\nnever asked\n"

    done = await run_cli("chat", "--sandbox", stdin=stdin, env=clean_env(tmp_path), cwd=tmp_path)

    assert done.code == 0, done.stderr
    out = done.stdout
    assert "user alice" in out.splitlines()[0]  # the sandbox's default user
    assert "! unknown command '/frobnicate'; type /help for the commands" in out
    assert "! unknown engine 'foo'; choose one of: claude, omni" in out
    assert "! ANTHROPIC_API_KEY: the claude engine needs an Anthropic API key; available here: omni" in out
    assert "! usage: /user NAME" in out
    assert "nobody-at-all" in out.split("alice@omni> /user nobody-at-all\n", 1)[1].splitlines()[0]
    assert "/engine NAME" in out  # the help
    assert out.rstrip().endswith("alice@omni> /quit")  # still alice; nothing after /quit was read
    assert "never asked" not in out


async def test_the_claude_engine_answers_with_the_users_own_numbers(served: Served, tmp_path: Path) -> None:
    alice = await revenue_by_region(served, "alice")
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE, answer="Revenue: {results}"))
    async with fake.serve() as url:
        env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url)
        done = await run_cli("chat", "--sandbox", stdin="revenue by region\n/usage\n", env=env, cwd=tmp_path)

    assert done.code == 0, done.stderr
    assert "engine claude" in done.stdout.splitlines()[0]
    answer = done.stdout.split("alice@claude> revenue by region\n", 1)[1]
    assert "· getData(revenue by region)" in answer and "✓ getData: " in answer
    assert "Revenue: " in answer and alice["West"] in answer and "East" not in answer
    usage = answer.split("alice@claude> /usage\n", 1)[1]
    used = [r.usage for r in fake.requests if r.usage is not None]
    assert tokens(usage, "input") == sum(u.input_tokens for u in used)
    assert tokens(usage, "output") == sum(u.output_tokens for u in used) > 0
    assert tokens(usage, "cache read") == sum(u.cache_read_input_tokens for u in used)
    assert tokens(usage, "cache write") == sum(u.cache_creation_input_tokens for u in used) > 0
    assert "Claude requests in this session: 2" in usage


async def test_ctrl_c_stops_the_answer_being_written_and_the_chat_goes_on(served: Served, tmp_path: Path) -> None:
    alice = await revenue_by_region(served, "alice")
    answering = asyncio.Event()
    plan = tool_then_answer(REVENUE)

    def respond(request: CapturedRequest) -> Reply:
        if not answering.is_set():
            answering.set()
            return text_reply("This answer never ends.", delay_seconds=60)
        return plan(request)

    fake = FakeAnthropic(responder=respond)
    async with fake.serve() as url:
        env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url)
        process = await start_cli("chat", "--sandbox", env=env, cwd=tmp_path)
        assert process.stdin is not None
        process.stdin.write(b"revenue by region\nrevenue by region\n/quit\n")
        await process.stdin.drain()
        async with asyncio.timeout(60):
            await answering.wait()
        process.send_signal(signal.SIGINT)
        done = await finish(process)

    assert done.code == 0, done.stderr
    first, second = done.stdout.split("alice@claude> revenue by region\n")[1:]
    assert "(answer stopped)" in first and "never ends" not in first
    assert alice["West"] in second
    assert "Traceback" not in done.stderr


async def test_a_conversation_is_resumed_by_its_id_for_its_own_user_only(served: Served, tmp_path: Path) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE))
    async with fake.serve() as url:
        env = clean_env(
            tmp_path,
            OMNI_BASE_URL=served.url,
            OMNI_API_KEY=served.org_key,
            ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=url,
        )
        first = await run_cli("ask", "revenue by region", "--user", "alice", "--json", env=env, cwd=tmp_path)
        answer = json.loads(first.stdout)
        cid = answer["conversation_id"]
        resumed = await run_cli(
            "chat", "--user", "alice", "--conversation", cid, stdin="/usage\n", env=env, cwd=tmp_path
        )
        refused = await run_cli("chat", "--user", "bob", "--conversation", cid, env=env, cwd=tmp_path)

    assert first.code == 0, first.stderr
    assert resumed.code == 0, resumed.stderr
    assert f"conversation {cid} (resumed)" in resumed.stdout
    # The tokens are kept with the conversation, not only in the process that spent them.
    assert tokens(resumed.stdout, "output") == answer["usage"]["output_tokens"] > 0
    assert tokens(resumed.stdout, "cache write") == answer["usage"]["cache_creation_input_tokens"] > 0
    assert refused.code == 2
    assert f"there is no conversation {cid!r} for user 'bob'" in refused.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["chat"], {"OMNI_BASE_URL": "http://127.0.0.1:9", "OMNI_API_KEY": "k"}, "--user is required"),
        (["chat", "--sandbox", "--engine", "claude"], {}, "ANTHROPIC_API_KEY: the claude engine needs"),
        (["chat", "--engine", "foo"], {}, "invalid choice: 'foo'"),
        (["chat"], {"BRIDGE_ENGINE": "gpt"}, "BRIDGE_ENGINE"),
    ],
)
async def test_bad_options_and_settings_stop_the_chat_with_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = await run_cli(*args, env=clean_env(tmp_path, **env), cwd=tmp_path)

    assert done.code == 2
    assert message in done.stderr
    assert done.stdout == ""
