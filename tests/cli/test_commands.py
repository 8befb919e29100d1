"""What a line typed at the chat prompt means, and the messages for lines that mean nothing."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from omni_bridge.cli.console.commands import Ask, Command, CommandError, PickFollowUp, parse_input
from omni_bridge.cli.console.prompt import CommandCompleter


@pytest.mark.parametrize(
    ("line", "meaning"),
    [
        ("revenue by region", Ask("revenue by region")),
        ("  revenue by region  ", Ask("revenue by region")),
        ("", None),
        ("   ", None),
        ("/new", Command("new")),
        ("/user bob", Command("user", "bob")),
        ("/USER  bob ", Command("user", "bob")),
        ("/engine claude", Command("engine", "claude")),
        ("/engine omni", Command("engine", "omni")),
        ("/usage", Command("usage")),
        ("/help", Command("help")),
        ("/quit", Command("quit")),
        ("/exit", Command("quit")),
        ("2024", Ask("2024")),  # no follow-ups on offer: a number is a question
    ],
)
def test_lines_are_questions_or_commands(line: str, meaning: object) -> None:
    assert parse_input(line) == meaning


def test_a_number_picks_a_follow_up_when_some_are_on_offer() -> None:
    assert parse_input("2", follow_ups=3) == PickFollowUp(2)
    with pytest.raises(CommandError, match="there is no follow-up 4; pick 1 to 3"):
        parse_input("4", follow_ups=3)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/frobnicate", "unknown command '/frobnicate'; type /help for the commands"),
        ("/engine foo", "unknown engine 'foo'; choose one of: claude, omni"),
        ("/engine", "usage: /engine claude|omni"),
        ("/user", "usage: /user NAME"),
        ("/user bob smith", "usage: /user NAME"),
        ("/new now", "/new takes no argument"),
    ],
)
def test_a_wrong_command_says_what_would_work(line: str, message: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_input(line)
    assert str(raised.value) == message


def completions(text: str, names: tuple[str, ...] = ("alice", "bob", "bobby")) -> list[str]:
    found = CommandCompleter(lambda: names).get_completions(Document(text), CompleteEvent(completion_requested=True))
    return [completion.text for completion in found]


@pytest.mark.parametrize(
    ("text", "offered"),
    [
        ("/us", ["/user", "/usage"]),
        ("/re", ["/resume"]),
        ("/user b", ["bob", "bobby"]),
        ("/user ", ["alice", "bob", "bobby"]),
        ("/engine c", ["claude"]),
        ("/user bob x", []),
        ("revenue /us", []),  # only at the start of a line
        ("/usage", []),  # complete already
    ],
)
def test_tab_offers_the_commands_and_after_user_the_names(text: str, offered: list[str]) -> None:
    assert completions(text) == offered
