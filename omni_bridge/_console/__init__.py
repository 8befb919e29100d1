"""The console agent behind `omni-bridge chat` and `omni-bridge ask`.

Private to the CLI: `cli.py` parses the options and calls `run_chat` or `run_ask`. The parts:
`commands` (what a typed line means), `render` (tables, bar charts, streamed markdown as text),
`view` (one answer's events drawn on a terminal or a pipe), `session` (the bridge, user, engine and
conversation of one console), `loop` (the event loop in a thread, so Ctrl-C stops an answer cleanly).
"""

from omni_bridge._console.ask import run_ask
from omni_bridge._console.chat import Terminal, run_chat
from omni_bridge._console.session import console_settings

__all__ = ["Terminal", "console_settings", "run_ask", "run_chat"]
