"""`omni-bridge ask`: one question, streamed or as one JSON object, with an exit code that tells the outcome."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from omni_bridge.cli import main
from omni_bridge.testing import FakeAnthropic, ToolCall, tool_then_answer
from tests.cli.console_helpers import clean_env, revenue_by_region, run_cli
from tests.conftest import Served


async def test_ask_json_prints_one_json_object_with_the_final_message(served: Served, tmp_path: Path) -> None:
    bob = await revenue_by_region(served, "bob")

    done = await run_cli(
        "ask", "revenue by region", "--sandbox", "--user", "bob", "--json", env=clean_env(tmp_path), cwd=tmp_path
    )

    assert done.code == 0, done.stderr
    answer = json.loads(done.stdout)  # the whole of stdout is the one object
    assert answer["outcome"] == "completed"
    assert (answer["engine"], answer["user"]) == ("omni", "bob")
    assert answer["conversation_id"].startswith("conv_") and answer["errors"] == []
    assert [part["type"] for part in answer["parts"]] == [
        "text",
        "chart",
        "chart_page",
        "provenance",
        "structured_action",
    ]
    assert "East" in answer["parts"][2]["html"] and "West" not in answer["parts"][2]["html"]
    assert answer["parts"][3]["queries"][0]["access_filters"] == {"customers.region": "East"}
    chart = answer["parts"][1]["chart"]
    assert [point["x"] for point in chart["series"][0]["points"]] == ["East"]
    assert bob["East"] in answer["parts"][0]["text"]


async def test_ask_json_lists_the_tool_calls_of_the_claude_engine(served: Served, tmp_path: Path) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "revenue by region"})))
    async with fake.serve() as url:
        env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=url)
        done = await run_cli("ask", "revenue by region", "--sandbox", "--json", env=env, cwd=tmp_path)

    assert done.code == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["engine"], answer["user"]) == ("claude", "alice")
    [call] = answer["tool_calls"]
    assert call["tool"] == "getData" and call["arguments"] == {"prompt": "revenue by region"}
    assert call["is_error"] is False and call["row_count"] == 1 and call["result_id"].startswith("res_")
    assert answer["usage"]["output_tokens"] > 0


async def test_an_errored_answer_exits_1_and_still_prints_its_json(tmp_path: Path) -> None:
    done = await run_cli("ask", "1", "--sandbox", "--json", env=clean_env(tmp_path), cwd=tmp_path)

    assert done.code == 1
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "errored"
    assert answer["errors"][0]["message"] in answer["parts"][0]["text"]


async def test_without_json_the_answer_streams_as_plain_text(served: Served, tmp_path: Path) -> None:
    alice = await revenue_by_region(served, "alice")

    done = await run_cli("ask", "revenue by region", "--sandbox", env=clean_env(tmp_path), cwd=tmp_path)

    assert done.code == 0, done.stderr
    assert alice["West"] in done.stdout and "Open in Omni:" in done.stdout
    assert "engine omni (Omni's own AI) · user alice" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ask", "   ", "--sandbox"], "the question is empty"),
        (["ask", "revenue", "--sandbox", "--engine", "claude"], "ANTHROPIC_API_KEY"),
        (["ask", "revenue", "--sandbox", "--user", "nobody-at-all"], "nobody-at-all"),
    ],
)
def test_a_bad_question_engine_or_user_exits_2(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in os.environ if name.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


@pytest.mark.parametrize("command", ["chat", "ask"])
def test_each_console_command_explains_its_options_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--sandbox", "--user", "--engine", "--conversation"):
        assert option in out
    assert "examples:" in out and f"omni-bridge {command} " in out.split("examples:")[1]
