"""`Engine`: what the `Bridge` calls to answer one question, whichever engine answers it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from omni_bridge.agent.engines.run import Run
from omni_bridge.agent.events import Event
from omni_bridge.types import EngineName

__all__ = ["Engine"]


class Engine(Protocol):
    """Answers one `Run` as a stream of events.

    The stream ends with a `FinalMessage` unless the run is cancelled; a failure the engine can name ends it
    with an `ErrorEvent` (its `error_type` from the one vocabulary, `omni_bridge.exceptions.ErrorType`) and
    a `FinalMessage` with outcome `errored`. Cancelling the run, or closing the stream early (`aclose`), stops
    the work behind it (the LLM stream, the MCP calls, Omni's job) and leaves the conversation saved and valid.
    """

    @property
    def name(self) -> EngineName:
        """The engine's name, as a conversation records it."""
        ...

    def run(self, run: Run) -> AsyncGenerator[Event, None]:
        """Answer `run.question`, yielding events, saving the conversation through `run.checkpoint()`."""
        ...
