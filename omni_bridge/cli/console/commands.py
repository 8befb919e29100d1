"""What the user typed at the chat prompt: a question, a follow-up number, or a slash command.

Parsing is a pure function so every mistake (an unknown command, a missing or wrong argument) gets a
message saying what would have been right, and the session goes on; nothing here talks to Omni.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from omni_bridge.types import EngineName

__all__ = [
    "COMMANDS",
    "ENGINES",
    "HELP",
    "Ask",
    "Command",
    "CommandError",
    "Input",
    "PickFollowUp",
    "as_engine",
    "parse_input",
]

ENGINES: tuple[EngineName, ...] = get_args(EngineName)

CommandName = Literal["new", "user", "engine", "usage", "history", "conversations", "resume", "help", "quit"]

HELP = """\
Ask a question about your data in plain words, e.g. "revenue by region".
A number asks the follow-up suggestion with that number.

  /new              start a new conversation (same user, same engine)
  /user NAME        act for another end user (starts a new conversation bound to NAME)
  /engine NAME      answer with `claude` (Claude over Omni's MCP tools) or `omni` (Omni's own AI);
                    starts a new conversation
  /usage            tokens this conversation has used (input, output, cache read, cache write)
  /history          this conversation's turns so far (questions and answers)
  /conversations    your past conversations, newest first, numbered
  /resume N         continue conversation N of /conversations (its last turns are shown)
  /help             this help
  /quit             leave (also Ctrl-D; Ctrl-C stops an answer, or leaves at the prompt)

Input: Tab completes commands and user names (after /user); Up/Down and Ctrl-R recall earlier input
(kept between sessions). A question over several lines: Esc then Enter starts a new line, and so does a
line ending in a backslash (\\), on a terminal and through a pipe alike."""

_ALIASES: dict[str, CommandName] = {
    "new": "new",
    "user": "user",
    "engine": "engine",
    "usage": "usage",
    "history": "history",
    "conversations": "conversations",
    "convs": "conversations",
    "resume": "resume",
    "help": "help",
    "?": "help",
    "quit": "quit",
    "exit": "quit",
    "q": "quit",
}
_NEEDS_ARGUMENT: dict[CommandName, str] = {
    "user": "/user NAME",
    "engine": "/engine claude|omni",
    "resume": "/resume N (a number from /conversations)",
}
COMMANDS: tuple[str, ...] = (
    "/new",
    "/user",
    "/engine",
    "/usage",
    "/history",
    "/conversations",
    "/resume",
    "/help",
    "/quit",
)
"""The commands as completed at the prompt, in the order offered."""


class CommandError(ValueError):
    """A slash command that cannot be run as typed; the message says what would work."""


@dataclass(frozen=True, slots=True)
class Ask:
    """A question to answer."""

    question: str


@dataclass(frozen=True, slots=True)
class PickFollowUp:
    """The number of a follow-up suggestion (1 for the first)."""

    number: int


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command, with its one argument where it takes one."""

    name: CommandName
    argument: str | None = None


Input = Ask | PickFollowUp | Command | None
"""What a line means; `None` for a blank line."""


def as_engine(name: str | None) -> EngineName:
    """`name` as an engine name.

    Raises:
        CommandError: it is not one.
    """
    for engine in ENGINES:
        if name == engine:
            return engine
    raise CommandError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")


def parse_input(line: str, *, follow_ups: int = 0) -> Input:
    """What a line typed at the prompt asks for.

    Args:
        line: the line, without its line end.
        follow_ups: how many follow-up suggestions are on offer; a bare number is only a pick when some are.

    Returns:
        `None` for a blank line, else an `Ask`, a `PickFollowUp` or a `Command`.

    Raises:
        CommandError: an unknown command, a missing or extra argument, an unknown engine, or a follow-up
            number that is not on offer.
    """
    text = line.strip()
    if not text:
        return None
    if text.isdigit() and follow_ups:
        number = int(text)
        if not 1 <= number <= follow_ups:
            raise CommandError(f"there is no follow-up {number}; pick 1 to {follow_ups}")
        return PickFollowUp(number)
    if not text.startswith("/"):
        return Ask(text)
    word, _, rest = text[1:].partition(" ")
    name = _ALIASES.get(word.lower())
    if name is None:
        raise CommandError(f"unknown command {'/' + word!r}; type /help for the commands")
    argument = rest.strip() or None
    if name in _NEEDS_ARGUMENT:
        if argument is None or len(argument.split()) != 1:
            raise CommandError(f"usage: {_NEEDS_ARGUMENT[name]}")
    elif argument is not None:
        raise CommandError(f"/{name} takes no argument")
    if name == "engine":
        as_engine(argument)
    if name == "resume" and not (argument or "").isdigit():
        raise CommandError(f"usage: {_NEEDS_ARGUMENT[name]}")
    return Command(name, argument)
