"""`omni-bridge chat` on a pseudo-terminal, read off an emulated screen: what a person at a terminal sees.

One session drives every interactive feature in order: a question (Markdown with a code fence, the tool's
one-line status, a bar chart), Tab completion of a command and of a user name, a question typed over two
lines with Esc-Enter (a line chart over months), one continued with a trailing backslash (a Rich table with
right-aligned numbers), `/history`, `/conversations` and `/resume` showing the earlier turns. The claude
engine runs against the scripted fake Anthropic API, which asks `getData` the question it was given, so the
numbers are the sandbox's, for the user of the moment.
"""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ToolCall, text_reply, tool_use_reply
from tests.cli.console_helpers import clean_env
from tests.cli.pty_helpers import ENTER, ESC_ENTER, TAB, PtyCommand, strip_escapes

ANSWER = "Here is **what I found**:\n\n```sql\nSELECT region, revenue FROM sales\n```\n"


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def analyst(request: CapturedRequest) -> Reply:
    """Asks `getData` the user's question, then answers in Markdown with a code fence."""
    blocks = _blocks(request.messages[-1])
    if any(block.get("type") == "tool_result" for block in blocks):
        return text_reply(ANSWER)
    question = " ".join(block["text"] for block in blocks if block.get("type") == "text")
    return tool_use_reply([ToolCall("getData", {"prompt": question})])


def prompt_line(screen: str, prompt: str) -> str:
    """The last line of the screen that starts with `prompt` (what is being typed)."""
    return [line for line in screen.splitlines() if line.startswith(prompt)][-1]


def after(screen: str, marker: str) -> str:
    """The screen below the last `marker`."""
    return screen.rsplit(marker, 1)[1]


def drive(console: PtyCommand) -> dict[str, str]:
    """Type the session; the screen after each step, by step."""
    seen: dict[str, str] = {}
    console.wait_for_text("alice@claude>")
    console.send("revenue by region" + ENTER)
    seen["bar"] = after(console.wait_for_text("alice@claude>", count=2), "alice@claude> revenue by region")

    console.send("/us" + TAB)
    seen["menu"] = console.wait_for_text("/usage")
    console.send(TAB)  # the menu's first entry
    seen["command"] = console.wait_for(lambda s: prompt_line(s, "alice@claude>") == "alice@claude> /user", "/user")
    console.send(" b" + TAB)
    seen["name"] = console.wait_for(lambda s: prompt_line(s, "alice@claude>").endswith("/user bob"), "/user bob")
    console.send(ENTER)
    console.wait_for_text("bob@claude>")

    console.send("orders by month" + ESC_ENTER + "in 2026")
    seen["two lines"] = console.wait_for_text("in 2026")
    console.send(ENTER)
    seen["line"] = after(console.wait_for_text("bob@claude>", count=2), "bob@claude> orders by month")

    console.send("orders, revenue and average order value\\" + ENTER + "by region" + ENTER)
    seen["table"] = after(console.wait_for_text("bob@claude>", count=3), "by region")

    console.send("/history" + ENTER)
    seen["history"] = after(console.wait_for_text("bob@claude>", count=4), "bob@claude> /history")
    console.send("/new" + ENTER)
    console.wait_for_text("bob@claude>", count=5)
    console.send("/conversations" + ENTER)
    seen["conversations"] = after(console.wait_for_text("bob@claude>", count=6), "bob@claude> /conversations")
    console.send("/resume 1" + ENTER)
    seen["resumed"] = after(console.wait_for_text("bob@claude>", count=7), "bob@claude> /resume 1")
    seen["code"] = str(console.close())
    return seen


async def chat_on_a_terminal(
    tmp_path: Path, responder: Callable[[CapturedRequest], Reply], steps: Callable[[PtyCommand], dict[str, str]]
) -> tuple[PtyCommand, dict[str, str]]:
    """`chat --sandbox` (claude engine, on the fake answering with `responder`) on a colour pty, driven by `steps`."""
    fake = FakeAnthropic(responder=responder)
    async with fake.serve() as url:
        env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url, TERM="xterm-256color")
        del env["NO_COLOR"]
        console = PtyCommand("chat", "--sandbox", env=env, cwd=tmp_path)
        try:
            return console, await asyncio.to_thread(steps, console)
        finally:
            console.kill()


async def test_the_console_on_a_terminal_draws_answers_tables_charts_and_completes_input(tmp_path: Path) -> None:
    console, seen = await chat_on_a_terminal(tmp_path, analyst, drive)
    (tmp_path / "pty-capture.txt").write_text(strip_escapes(console.raw.decode(errors="replace")))

    assert seen["code"] == "0"
    bar = seen["bar"]
    assert re.search(r"^✓ getData\(revenue by region\) · \d+ rows? · \d+\.\ds$", bar, re.MULTILINE), bar
    assert "what I found" in bar and "**" not in bar  # Markdown rendered: bold, not asterisks
    assert "SELECT region, revenue FROM sales" in bar and "```" not in bar  # the code fence drawn as code
    assert "(bar chart)" in bar and re.search(r"^West +█+ +[\d,.]+$", bar, re.MULTILINE), bar
    assert "How this was computed: topic order_items" in bar
    assert "/user" in seen["menu"] and "/usage" in seen["menu"]  # both commands offered for `/us`
    line = seen["line"]
    assert "… in 2026" in seen["two lines"]  # the second line of the input, under a continuation prompt
    assert "(line chart)" in line and "┤" in line and "2026-01" in line, line
    assert re.search(r"[⠁-⣿]", line)  # the line itself, in braille dots
    table = seen["table"]
    assert "╭" in table and "╰" in table, table
    [east] = [row for row in table.splitlines() if row.startswith("│ East")]
    [header] = [row for row in table.splitlines() if row.startswith("│") and "region" in row.lower()]
    # Every number ends where its column's header ends: right-aligned.
    for head, cell in list(zip(header.split("│"), east.split("│"), strict=True))[2:-1]:
        assert cell.rstrip() and cell.endswith(" ") and len(cell.rstrip()) == len(head.rstrip()), (head, cell)
        assert re.fullmatch(r" +[\d,.]+ ", cell), cell
    history = seen["history"]
    assert "bob> orders by month" in history and "bob> orders, revenue" in history
    assert "alice> " not in history and "revenue by region" not in history.split("bob> orders by month")[0]
    assert re.search(r"^ +1\. conv_\w+ .*2 questions · “orders by month", seen["conversations"], re.MULTILINE)
    resumed = seen["resumed"]
    assert "resumed conversation conv_" in resumed and "bob> orders by month" in resumed
    assert "bob> orders, revenue and average order value" in resumed
    history_file = tmp_path / "chat_history"
    assert stat.S_IMODE(history_file.stat().st_mode) == 0o600
    assert "revenue by region" in history_file.read_text()


SLOW_WORDS = "The first words arrive, " + "then the rest of this answer keeps on coming, slowly. " * 12
"""An answer of about forty 16-character deltas, two seconds apart: still being written long after its start."""

CTRL_C = "\x03"


def stopped_then_asked_again(console: PtyCommand) -> dict[str, str]:
    """Ctrl-C typed while an answer streams, then a second question, then Ctrl-C at the prompt: the screens."""
    seen: dict[str, str] = {}
    console.wait_for_text("alice@claude>")
    console.send("tell me slowly" + ENTER)
    console.wait_for_text("The first words")  # the answer is on the screen and still coming
    console.send(CTRL_C)  # the key, through the pty's line discipline: SIGINT to the foreground group
    seen["stopped"] = after(console.wait_for_text("alice@claude>", count=2), "alice@claude> tell me slowly")
    console.send("revenue by region" + ENTER)
    seen["next"] = after(console.wait_for_text("alice@claude>", count=3), "alice@claude> revenue by region")
    seen["code"] = str(console.close(CTRL_C))  # at the prompt, Ctrl-C leaves
    return seen


async def test_ctrl_c_typed_during_an_answer_stops_it_and_the_console_asks_for_the_next_question(
    tmp_path: Path,
) -> None:
    def respond(request: CapturedRequest) -> Reply:
        if "tell me slowly" in str(request.messages[-1]["content"]):
            return text_reply(SLOW_WORDS, delay_seconds=2)
        return analyst(request)

    console, seen = await chat_on_a_terminal(tmp_path, respond, stopped_then_asked_again)

    assert seen["code"] == "0"
    stopped = seen["stopped"]
    assert "(answer stopped)" in stopped and "The first words" in stopped, stopped
    assert stopped.count("slowly.") < 12  # cut short: the rest of the answer never came
    output = strip_escapes(console.raw.decode(errors="replace"))
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert re.search(r"^West +█+ +[\d,.]+$", seen["next"], re.MULTILINE), seen["next"]  # the next answer is whole
