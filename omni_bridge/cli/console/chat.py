"""`omni-bridge chat`: the console agent, interactive on a terminal and line by line through a pipe.

On a terminal: a prompt naming the user and the engine (`alice@omni> `), read with prompt_toolkit
(`prompt`: completion, a history file in `BRIDGE_DATA_DIR`, multiline input), and output through Rich
(`view`: streamed Markdown, a spinner, tables and charts). Ctrl-C stops the answer being written and returns
to the prompt; Ctrl-C or Ctrl-D at the prompt leaves. Through a pipe: each input line is echoed after the
prompt and answered in turn, in plain text with no escape code, and the command exits 0 at the end of the
input; a line ending in a backslash goes on on the next line, as at the terminal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console, RenderableType
from rich.text import Text

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
from omni_bridge.cli.console.prompt import ConsolePrompt
from omni_bridge.cli.console.render import make_console
from omni_bridge.cli.console.session import ConsoleSession, check_engine, choose_user, open_bridge
from omni_bridge.cli.console.turns import RESUMED_TURNS, Turn, conversation_line, turns_renderable
from omni_bridge.cli.console.view import AnswerView
from omni_bridge.config import Settings
from omni_bridge.exceptions import OmniBridgeError
from omni_bridge.types import EngineName

__all__ = ["Terminal", "run_chat"]


@dataclass
class Terminal:
    """What the console may do with its streams: style and redraw them, edit input with prompt_toolkit."""

    stdin: TextIO
    stdout: TextIO
    interactive: bool
    """stdin is a terminal: do not echo input lines."""
    live: bool
    """stdin and stdout are a terminal the user watches (and `TERM` is not `dumb`): Rich styles, a live
    region, prompt_toolkit input."""
    console: Console = field(init=False)
    _prompt: ConsolePrompt | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.console = make_console(self.stdout, terminal=self.live)

    @classmethod
    def detect(cls, stdin: TextIO, stdout: TextIO) -> Terminal:
        """Plain text unless both ends are terminals; `TERM=dumb` turns styling off, `NO_COLOR` colour."""
        interactive = stdin.isatty()
        live = interactive and stdout.isatty() and os.environ.get("TERM") != "dumb"
        return cls(stdin, stdout, interactive, live)

    def view(self) -> AnswerView:
        return AnswerView(self.console, live=self.live)

    def write(self, *lines: RenderableType) -> None:
        for line in lines:
            self.console.print(line, soft_wrap=isinstance(line, (str, Text)))
        self.stdout.flush()

    def note(self, text: str) -> None:
        """A dim line of news (a new conversation, the user switched)."""
        self.write(Text(text, style="dim"))

    def error(self, text: str) -> None:
        self.write(Text(f"! {text}", style="bold red"))

    def start_input(self, data_dir: Path, session: ConsoleSession) -> None:
        """Set up prompt_toolkit (on a live terminal): history in `data_dir`, completion from `session`."""
        if self.live:
            self._prompt = ConsolePrompt(data_dir, session.user_names)

    def read_line(self, prompt: str) -> str:
        """The next input (its lines joined by `\n`).

        Raises:
            EOFError: the input is over (Ctrl-D, or the end of the pipe).
            KeyboardInterrupt: Ctrl-C at the prompt.
        """
        if self._prompt is not None:
            user, _, rest = prompt.partition("@")
            return self._prompt.read([("bold", user), ("", "@"), ("ansicyan", rest.rstrip("> ")), ("", "> ")])
        if self.interactive:
            return input(prompt)
        lines: list[str] = []
        while True:
            line = self.stdin.readline()
            if not line:
                if lines:
                    break
                raise EOFError
            line = line.rstrip("\r\n")
            if not line.endswith("\\"):
                lines.append(line)
                break
            lines.append(line[:-1])
        text = "\n".join(lines)
        self.write(prompt + text)  # the transcript shows what was asked
        return text


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
        _header(terminal, session, engine, runner)
        terminal.start_input(settings.bridge_data_dir, session)
        _loop(terminal, session, runner)
    return 0


def _header(
    terminal: Terminal, session: ConsoleSession, asked_engine: EngineName | None, runner: LoopThread[Bridge]
) -> None:
    terminal.write(Text.assemble(("omni-bridge chat", "bold"), f" · {session.describe()} · Omni: {session.where}"))
    state = "resumed" if session.resumed else "new"
    terminal.note(f"conversation {session.conversation_id} ({state}) · /help for commands")
    if session.resumed and asked_engine is not None and asked_engine != session.engine:
        terminal.note(f"(the conversation keeps its engine, {session.engine})")
    if session.resumed:
        _show_last_turns(terminal, session, runner.call(session.history()))


def _show_last_turns(terminal: Terminal, session: ConsoleSession, turns: list[Turn]) -> None:
    """The last turns of a resumed conversation, so it is clear where it stands."""
    last = turns[-2 * RESUMED_TURNS :]
    if not last:
        return
    earlier = len(turns) - len(last)
    terminal.note(f"last {len(last)} of {len(turns)} turns (/history shows all):" if earlier else "so far:")
    terminal.write(turns_renderable(last, user=session.user, styled=terminal.live))


def _loop(terminal: Terminal, session: ConsoleSession, runner: LoopThread[Bridge]) -> None:
    """Read, dispatch, repeat, until the user leaves."""
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
            terminal.error(str(exc))
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
            terminal.note(f"→ {question}")
        else:
            assert isinstance(parsed, Ask)
            question = parsed.question
        try:
            runner.call(session.ask(question))
        except Interrupted:
            terminal.note("(answer stopped)")
        except OmniBridgeError as exc:
            terminal.error(str(exc))


def _command(terminal: Terminal, session: ConsoleSession, command: Command, runner: LoopThread[Bridge]) -> None:
    try:
        if command.name == "help":
            terminal.write(HELP)
        elif command.name == "new":
            session.new_conversation()
            terminal.note(f"new conversation {session.conversation_id} · {session.describe()}")
        elif command.name == "user":
            assert command.argument is not None
            runner.call(session.switch_user(command.argument))
            terminal.note(f"now {session.describe()} · new conversation {session.conversation_id}")
        elif command.name == "engine":
            session.switch_engine(as_engine(command.argument))
            terminal.note(f"now {session.describe()} · new conversation {session.conversation_id}")
        elif command.name == "usage":
            terminal.write(*runner.call(session.usage_lines()))
        elif command.name == "history":
            turns = runner.call(session.history())
            if not turns:
                terminal.note(f"conversation {session.conversation_id}: nothing asked yet")
            else:
                terminal.note(f"conversation {session.conversation_id}, {len(turns)} turns:")
                terminal.write(turns_renderable(turns, user=session.user, styled=terminal.live))
        elif command.name == "conversations":
            _list_conversations(terminal, session, runner)
        elif command.name == "resume":
            assert command.argument is not None
            turns = runner.call(session.resume(int(command.argument)))
            terminal.note(f"resumed conversation {session.conversation_id} · {session.describe()}")
            _show_last_turns(terminal, session, turns)
    except Interrupted:
        terminal.note("(stopped)")
    except OmniBridgeError as exc:
        terminal.error(str(exc))


def _list_conversations(terminal: Terminal, session: ConsoleSession, runner: LoopThread[Bridge]) -> None:
    listed, elsewhere = runner.call(session.conversations())
    if not listed:
        terminal.note(f"no conversations of {session.user} here yet")
    else:
        terminal.write(Text(f"Conversations of {session.user}, newest first (/resume N continues one):", style="bold"))
        for number, conversation in enumerate(listed, 1):
            current = conversation.id == session.conversation_id
            terminal.write(conversation_line(number, conversation, current=current))
    if elsewhere:
        terminal.note(f"({elsewhere} more on another Omni, e.g. an earlier sandbox: they cannot be continued here)")
