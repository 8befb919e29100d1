"""`omni-bridge ask`: one question, answered like in the chat, or as one JSON object for scripts.

With `--json`, stdout carries exactly one JSON object: the final `AssistantMessage` (`model_dump(mode="json")`)
plus `conversation_id`, `engine`, `user`, the `tool_calls` made and the `errors` reported. Progress goes to
stderr, and only when stderr is a terminal. The exit code tells the outcome: 0 completed, 1 errored or
canceled (or Omni unreachable), 2 a bad option, setting or user, 130 stopped with Ctrl-C.

A script reads stdout as JSON whatever happened once the question was put: an answer that could not be
given at all (Omni unreachable, an unexpected failure) still prints one object, outcome `errored`, with
the reason in `errors`; only a bad option, setting or user (exit 2) and Ctrl-C print none.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, TextIO

from omni_bridge.agent.events import AssistantMessage, TextPart
from omni_bridge.cli.console.loop import Interrupted, LoopThread
from omni_bridge.cli.console.render import make_console
from omni_bridge.cli.console.session import ConsoleSession, check_engine, choose_user, open_bridge
from omni_bridge.cli.console.view import AnswerView
from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError, ErrorType, IdentityError, OmniError
from omni_bridge.types import EngineName

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

    views: list[AnswerView] = []  # the view of the answer, kept for a run that fails half-way

    def make_view() -> AnswerView:
        if as_json:  # stdout is the JSON alone; a spinner on stderr when someone watches it
            watched = stderr.isatty() and os.environ.get("TERM") != "dumb"
            progress = make_console(stderr if watched else io.StringIO(), terminal=watched)
            view = AnswerView(progress, live=watched, show_answer=False)
        else:
            live = stdout.isatty() and os.environ.get("TERM") != "dumb"
            view = AnswerView(make_console(stdout, terminal=live), live=live)
        views.append(view)
        return view

    session: ConsoleSession | None = None
    failure: tuple[ErrorType, str, bool] | None = None  # (error_type, message, retryable) of an answer never given
    try:
        with LoopThread(lambda: open_bridge(settings)) as (runner, bridge):
            session = ConsoleSession(bridge, name, chosen, make_view=make_view)
            runner.call(session.start(conversation_id))
            if not as_json or stderr.isatty():
                print(f"{session.describe()} · conversation {session.conversation_id}", file=stderr, flush=True)
            runner.call(session.ask(question))
    except Interrupted:
        print("omni-bridge: stopped", file=stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, IdentityError, BrokenPipeError):  # BrokenPipeError: the reader left; `main` ends quietly
        raise
    except OmniError as exc:
        print(f"omni-bridge: Omni could not be reached: {exc}", file=stderr)
        failure = (exc.error_type, f"Omni could not be reached: {exc}", exc.retryable)
    except Exception as exc:
        # A bug or a failure nobody typed: one line, not a traceback, and for scripts still their JSON.
        print(f"omni-bridge: the answer failed ({type(exc).__name__})", file=stderr)
        failure = ("internal_error", "The answer failed unexpectedly; ask again.", True)
    view = views[-1] if views else None
    final = view.final if view is not None else None
    if final is None and failure is None:  # an engine always ends with a FinalMessage; say so if not
        print("omni-bridge: the answer ended without a final message", file=stderr)
        failure = ("internal_error", "The answer ended without a final message.", True)
    if as_json:
        errors = [] if view is None else [error.model_dump(mode="json") for error in view.errors]
        if final is None:
            assert failure is not None
            error_type, message, retryable = failure
            errors.append({"error_type": error_type, "message": message, "retryable": retryable})
            final = AssistantMessage(
                conversation_id=session.conversation_id if session else conversation_id or "",
                parts=[TextPart(text=message)],
                outcome="errored",
            )
        body: dict[str, Any] = final.model_dump(mode="json")
        body.update(
            conversation_id=final.conversation_id,
            engine=session.engine if session else chosen,
            user=session.user if session else name,
            tool_calls=[] if view is None else [call.as_json() for call in view.tool_calls],
            errors=[{key: error[key] for key in ("error_type", "message", "retryable")} for error in errors],
        )
        stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        stdout.flush()
    return EXIT_OK if final is not None and final.outcome == "completed" else EXIT_ERRORED
