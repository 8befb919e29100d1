"""`omni-bridge chat` through a pipe: plain text, no escape code, and the same text on every run.

The same session as at the terminal (a bar chart, a line chart over months, a table, a question continued
with a trailing backslash, `/history`, `/conversations`, `/resume`), read as a script or a log would read
it. Colour is asked for (`TERM`, `FORCE_COLOR`, no `NO_COLOR`): the pipe alone keeps the output plain.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.console_helpers import clean_env, run_cli

SESSION = (
    "revenue by region\n"
    "orders by month in 2026\n"
    "orders, revenue and average order value\\\n"
    "by region\n"
    "/history\n"
    "/new\n"
    "/conversations\n"
    "/resume 1\n"
)
_VARYING = [
    (re.compile(r"conv_[0-9a-f]{24}"), "conv_ID"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} ·"), "WHEN ·"),
]


def normalized(text: str) -> str:
    """`text` with what differs between runs by design replaced: ids, the sandbox's port, times, and the
    progress news (`· Generating a query`), which say what Omni's AI was doing when it was polled."""
    text = "\n".join(line for line in text.splitlines() if not line.startswith("· "))
    for pattern, stands_for in _VARYING:
        text = pattern.sub(stands_for, text)
    return text


async def run_session(data_dir: Path) -> str:
    env = clean_env(data_dir, TERM="xterm-256color", FORCE_COLOR="1", COLUMNS="40")
    del env["NO_COLOR"]
    done = await run_cli("chat", "--sandbox", stdin=SESSION, env=env, cwd=data_dir)
    assert done.code == 0, done.stderr
    return done.stdout


async def test_through_a_pipe_the_console_is_plain_and_the_same_on_every_run(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await run_session(tmp_path / "a")
    second = await run_session(tmp_path / "b")

    assert "\x1b" not in first and "\r" not in first  # no colour, no spinner, no redraws
    assert normalized(first) == normalized(second)
    out = first
    assert "alice@omni> orders, revenue and average order value\nby region\n" in out  # one question, two lines
    assert re.search(r"^West +█+ +1,\d{3},\d{3}\.\d\d$", out, re.MULTILINE), out  # the bar chart
    assert "(line chart)" in out and re.search(r"^ +\d+ ┤[ ⠁-⣿]+$", out, re.MULTILINE)
    assert re.search(r"^\| West +\| +[\d,]+ \| +[\d,.]+ \| +[\d,.]+ \|$", out, re.MULTILINE), out  # ASCII table
    assert max(len(line) for line in out.splitlines() if line.startswith(("+", "|"))) <= 100  # not COLUMNS=40
    history = out.split("alice@omni> /history\n", 1)[1].split("alice@omni> /new\n", 1)[0]
    assert history.startswith("conversation conv_") and "alice> revenue by region" in history
    assert "alice> orders, revenue and average order value\nby region" in history
    listed = out.split("alice@omni> /conversations\n", 1)[1].split("alice@omni> /resume 1\n", 1)[0]
    assert re.search(r"^  1\. conv_\w+  .* · omni · 3 questions · “revenue by region”$", listed, re.MULTILINE)
    resumed = out.split("alice@omni> /resume 1\n", 1)[1]
    assert resumed.startswith("resumed conversation conv_")
    assert "alice> orders by month in 2026" in resumed and "alice> orders, revenue" in resumed
    assert "alice> revenue by region" not in resumed  # the last turns only: 2 of 3 questions
