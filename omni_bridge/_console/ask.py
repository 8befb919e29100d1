"""`omni-bridge ask`: one question, answered like in the chat, or as one JSON object for scripts.

With `--json`, stdout carries exactly one JSON object: the final `AssistantMessage` (`model_dump(mode="json")`)
plus `conversation_id`, `engine`, `user`, the `tool_calls` made and the `errors` reported. Progress goes to
stderr, and only when stderr is a terminal. The exit code tells the outcome: 0 completed, 1 errored or
canceled (or Omni unreachable), 2 a bad option, setting or user, 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from typing import Any, TextIO

from omni_bridge._console.commands import EngineName
from omni_bridge._console.loop import Interrupted, LoopThread
from omni_bridge._console.render import Style
from omni_bridge._console.session import ConsoleSession, check_engine, choose_user, open_bridge
from omni_bridge._console.view import AnswerView
from omni_bridge.config import Settings
from omni_bridge.exceptions import OmniError

__all__ = ["EXIT_ERRORED", "EXIT_INTERRUPTED", "EXIT_OK", "run_ask"]

EXIT_OK = 0
EXIT_ERRORED = 1
EXIT_INTERRUPTED = 130


def run_ask(
    settings: Settings,
    *,
    question: str,
    user: str | None,
    engine: EngineName | None,
    conversation_id: str | None,
    as_json: bool,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Answer one question and return the exit code.

    Raises:
        ConfigError: a setting or option is wrong (exit 2).
        IdentityError: the user is unknown to Omni, or the conversation is not theirs (exit 2).
    """
    name = choose_user(settings, user)
    chosen = check_engine(settings, engine)
    width = shutil.get_terminal_size((80, 24)).columns

    def make_view() -> AnswerView:
        if as_json:
            progress: TextIO = stderr if stderr.isatty() else io.StringIO()
            return AnswerView(progress, style=Style(False), live=stderr.isatty(), width=width, show_answer=False)
        live = stdout.isatty() and os.environ.get("TERM") != "dumb"
        return AnswerView(stdout, style=Style(live and "NO_COLOR" not in os.environ), live=live, width=width)

    try:
        with LoopThread(lambda: open_bridge(settings)) as (runner, bridge):
            session = ConsoleSession(bridge, name, chosen, make_view=make_view)
            runner.call(session.start(conversation_id))
            if not as_json or stderr.isatty():
                print(f"{session.describe()} · conversation {session.conversation_id}", file=stderr, flush=True)
            view = runner.call(session.ask(question))
    except Interrupted:
        print("omni-bridge: stopped", file=stderr)
        return EXIT_INTERRUPTED
    except OmniError as exc:
        print(f"omni-bridge: Omni could not be reached: {exc}", file=stderr)
        return EXIT_ERRORED
    final = view.final
    if final is None:  # an engine always ends with a FinalMessage; say so rather than print half a result
        print("omni-bridge: the answer ended without a final message", file=stderr)
        return EXIT_ERRORED
    if as_json:
        body: dict[str, Any] = final.model_dump(mode="json")
        body.update(
            conversation_id=final.conversation_id,
            engine=session.engine,
            user=session.user,
            tool_calls=[call.as_json() for call in view.tool_calls],
            errors=[
                error.model_dump(mode="json", include={"error_type", "message", "retryable"}) for error in view.errors
            ],
        )
        stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        stdout.flush()
    return EXIT_OK if final.outcome == "completed" else EXIT_ERRORED
