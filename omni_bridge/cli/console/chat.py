"""`omni-bridge chat`: the console agent, interactive on a terminal and line by line through a pipe.

On a terminal: a prompt naming the user and the engine (`alice@omni> `), `readline` editing with a history
file in `BRIDGE_DATA_DIR`, ANSI styling and a live status line. Ctrl-C stops the answer being written and
returns to the prompt; Ctrl-C or Ctrl-D at the prompt leaves. Through a pipe: each input line is echoed
after the prompt and answered in turn, in plain text, and the command exits 0 at the end of the input.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from omni_bridge.agent import Bridge
from omni_bridge.cli.console.commands import (
    HELP,
    Ask,
    Command,
    CommandError,
    PickFollowUp,
    as_engine,
    parse_input,
)
from omni_bridge.cli.console.loop import Interrupted, LoopThread
from omni_bridge.cli.console.render import Style
from omni_bridge.cli.console.session import ConsoleSession, check_engine, choose_user, open_bridge
from omni_bridge.cli.console.view import AnswerView
from omni_bridge.config import Settings
from omni_bridge.exceptions import OmniBridgeError
from omni_bridge.types import EngineName

try:  # `readline` is missing on Windows; line editing and history are then left to the terminal.
    import readline
except ImportError:  # pragma: no cover - POSIX CI has readline
    readline = None  # type: ignore[assignment]

__all__ = ["Terminal", "run_chat"]

HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000
_ESCAPE = re.compile(r"(\x1b\[[0-9;]*m)")


@dataclass(frozen=True, slots=True)
class Terminal:
    """What the console may do with its streams: style them, redraw a status line, edit input lines."""

    stdin: TextIO
    stdout: TextIO
    interactive: bool
    """stdin is a terminal: read with `readline`, do not echo input lines."""
    style: Style
    live: bool
    """stdout is a terminal the user watches: redraw a status line in place."""

    @classmethod
    def detect(cls, stdin: TextIO, stdout: TextIO) -> Terminal:
        """Plain text unless both ends are terminals; `NO_COLOR` or `TERM=dumb` turn styling off."""
        interactive = stdin.isatty()
        live = interactive and stdout.isatty() and os.environ.get("TERM") != "dumb"
        colour = live and "NO_COLOR" not in os.environ
        return cls(stdin, stdout, interactive, Style(colour), live)

    def width(self) -> int:
        return shutil.get_terminal_size((80, 24)).columns

    def view(self) -> AnswerView:
        return AnswerView(self.stdout, style=self.style, live=self.live, width=self.width())

    def write(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(line + "\n")
        self.stdout.flush()

    def read_line(self, prompt: str) -> str:
        """The next input line (without its end).

        Raises:
            EOFError: the input is over (Ctrl-D, or the end of the pipe).
            KeyboardInterrupt: Ctrl-C at the prompt.
        """
        if self.interactive:
            return input(self._readline_prompt(prompt))
        line = self.stdin.readline()
        if not line:
            raise EOFError
        line = line.rstrip("\r\n")
        self.write(prompt + line)  # the transcript shows what was asked
        return line

    def _readline_prompt(self, prompt: str) -> str:
        user, _, rest = prompt.partition("@")
        shown = self.style.bold(user) + "@" + self.style.cyan(rest.rstrip("> ")) + "> "
        # readline counts the prompt's width: the escape codes must be marked as taking none.
        return _ESCAPE.sub("\x01\\1\x02", shown) if readline is not None else shown


@contextlib.contextmanager
def _history(terminal: Terminal, data_dir: Path) -> Iterator[None]:
    """Load and save the input history, on a terminal with `readline`."""
    if not terminal.interactive or readline is None:
        yield
        return
    path = data_dir / HISTORY_FILE
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            readline.write_history_file(path)
            os.chmod(path, 0o600)  # the questions asked: the owner's alone, like the conversation database


def run_chat(
    settings: Settings,
    *,
    user: str | None,
    engine: EngineName | None,
    conversation_id: str | None,
    terminal: Terminal,
) -> int:
    """Run the chat until `/quit`, the end of the input, or Ctrl-C at the prompt.

    Returns:
        0; start-up problems raise instead.

    Raises:
        ConfigError: a setting or option is wrong.
        IdentityError: the user is unknown to Omni, or the conversation is not theirs.
        OmniError: Omni could not be reached at start.
    """
    name = choose_user(settings, user)
    chosen = check_engine(settings, engine)
    with LoopThread(lambda: open_bridge(settings)) as (runner, bridge):
        session = ConsoleSession(bridge, name, chosen, make_view=terminal.view)
        runner.call(session.start(conversation_id))
        _header(terminal, session, engine)
        with _history(terminal, settings.bridge_data_dir):
            _loop(terminal, session, runner)
    return 0


def _header(terminal: Terminal, session: ConsoleSession, asked_engine: EngineName | None) -> None:
    style = terminal.style
    terminal.write(style.bold("omni-bridge chat") + f" · {session.describe()} · Omni: {session.where}")
    state = "resumed" if session.resumed else "new"
    terminal.write(style.dim(f"conversation {session.conversation_id} ({state}) · /help for commands"))
    if session.resumed and asked_engine is not None and asked_engine != session.engine:
        terminal.write(style.dim(f"(the conversation keeps its engine, {session.engine})"))


def _loop(terminal: Terminal, session: ConsoleSession, runner: LoopThread[Bridge]) -> None:
    """Read, dispatch, repeat, until the user leaves."""
    style = terminal.style
    while True:
        try:
            line = terminal.read_line(session.prompt)
        except EOFError:
            if terminal.interactive:
                terminal.write("")
            return
        except KeyboardInterrupt:
            terminal.write("")
            return
        try:
            parsed = parse_input(line, follow_ups=len(session.follow_ups))
        except CommandError as exc:
            terminal.write(style.red(f"! {exc}"))
            continue
        if parsed is None:
            continue
        if isinstance(parsed, Command):
            if parsed.name == "quit":
                return
            _command(terminal, session, parsed, runner)
            continue
        if isinstance(parsed, PickFollowUp):
            question = session.follow_ups[parsed.number - 1].prompt
            terminal.write(style.dim(f"→ {question}"))
        else:
            assert isinstance(parsed, Ask)
            question = parsed.question
        try:
            runner.call(session.ask(question))
        except Interrupted:
            terminal.write(style.dim("(answer stopped)"))
        except OmniBridgeError as exc:
            terminal.write(style.red(f"! {exc}"))


def _command(terminal: Terminal, session: ConsoleSession, command: Command, runner: LoopThread[Bridge]) -> None:
    style = terminal.style
    try:
        if command.name == "help":
            terminal.write(HELP)
        elif command.name == "new":
            session.new_conversation()
            terminal.write(style.dim(f"new conversation {session.conversation_id} · {session.describe()}"))
        elif command.name == "user":
            assert command.argument is not None
            runner.call(session.switch_user(command.argument))
            terminal.write(style.dim(f"now {session.describe()} · new conversation {session.conversation_id}"))
        elif command.name == "engine":
            session.switch_engine(as_engine(command.argument))
            terminal.write(style.dim(f"now {session.describe()} · new conversation {session.conversation_id}"))
        elif command.name == "usage":
            terminal.write(*runner.call(session.usage_lines(style)))
    except Interrupted:
        terminal.write(style.dim("(stopped)"))
    except OmniBridgeError as exc:
        terminal.write(style.red(f"! {exc}"))
