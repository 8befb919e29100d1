"""The chat prompt on a terminal: prompt_toolkit, with completion, a kept history and multiline input.

Why prompt_toolkit rather than `readline`: completion that knows the command line's grammar (commands after
`/`, user names after `/user `, engines after `/engine `), a completion menu, multiline editing with a
continuation prompt, and the same behaviour on every platform (`readline` is missing on Windows and is
libedit on macOS).

Enter sends the input. Esc then Enter starts a new line; so does Enter after a trailing backslash (the
backslash is dropped), the convention of shells. The history is one file in `BRIDGE_DATA_DIR`, created 0600
before prompt_toolkit appends to it: the questions asked are the owner's alone, like the conversations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from omni_bridge.cli.console.commands import COMMANDS, ENGINES

__all__ = ["HISTORY_FILE", "CommandCompleter", "ConsolePrompt", "private_file"]

HISTORY_FILE = "chat_history"


class CommandCompleter(Completer):
    """Completes `/commands` at the start of a line, and the argument of `/user` and `/engine`."""

    def __init__(self, user_names: Callable[[], Iterable[str]]) -> None:
        self._user_names = user_names

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        word, space, rest = text.partition(" ")
        if not space:
            yield from _starting(word, COMMANDS)
        elif " " not in rest and word == "/user":
            yield from _starting(rest, self._user_names())
        elif " " not in rest and word == "/engine":
            yield from _starting(rest, ENGINES)


def _starting(prefix: str, choices: Iterable[str]) -> Iterable[Completion]:
    for choice in choices:
        if choice.startswith(prefix) and choice != prefix:
            yield Completion(choice, start_position=-len(prefix))


def _bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter", eager=True)
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)  # Enter on a menu entry takes it
            return
        if buffer.document.text_before_cursor.endswith("\\") and buffer.document.is_cursor_at_the_end:
            buffer.delete_before_cursor()
            buffer.insert_text("\n")
            return
        buffer.validate_and_handle()

    @bindings.add("escape", "enter", eager=True)
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


def private_file(path: Path) -> Path:
    """`path`, created empty if missing, mode 0600, in a directory created 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    return path


class ConsolePrompt:
    """Reads one input (possibly several lines) at a time from the terminal.

    Args:
        data_dir: where the history file is kept.
        user_names: the names to complete after `/user` (asked at each completion, so new ones count).
    """

    def __init__(self, data_dir: Path, user_names: Callable[[], Iterable[str]]) -> None:
        history = FileHistory(str(private_file(data_dir / HISTORY_FILE)))
        self._session: PromptSession[str] = PromptSession(
            history=history,
            completer=CommandCompleter(user_names),
            complete_while_typing=False,
            key_bindings=_bindings(),
            multiline=True,
            prompt_continuation=lambda width, line_number, wrap_count: "… ".rjust(width),
            enable_history_search=False,
        )

    def read(self, prompt: Sequence[tuple[str, str]]) -> str:
        """The next input, its lines joined by `\\n`.

        Raises:
            EOFError: Ctrl-D on an empty line.
            KeyboardInterrupt: Ctrl-C.
        """
        return self._session.prompt(FormattedText(list(prompt)))
