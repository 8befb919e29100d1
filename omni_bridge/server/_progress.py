"""What a running response shows pollers: its parts so far and its progress line, built from its events.

Pure functions of the event stream (no I/O), so the runner's writer only has to store what they give. Text
and thinking deltas are joined into one part per stretch; a chart, a chart page or suggested actions become their
parts; the final message replaces everything with its own parts.
"""

from __future__ import annotations

from omni_bridge.agent.events import (
    ChartPageReady,
    ChartPart,
    ChartReady,
    ContentPart,
    Event,
    FinalMessage,
    Progress,
    SuggestedActions,
    SuggestedActionsPart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallFinished,
    ToolCallStarted,
)

__all__ = ["PartsSoFar", "progress_line"]


class PartsSoFar:
    """The parts of a running response, built from its events: text and thinking deltas are joined up."""

    def __init__(self) -> None:
        self._parts: list[ContentPart | list[str]] = []
        self._kinds: list[str] = []

    def add(self, event: Event) -> bool:
        """Take the event into the parts; True when they changed."""
        if isinstance(event, TextDelta | ThinkingDelta):
            kind = "text" if isinstance(event, TextDelta) else "thinking"
            if self._kinds and self._kinds[-1] == kind:
                last = self._parts[-1]
                assert isinstance(last, list)
                last.append(event.text)
            else:
                self._parts.append([event.text])
                self._kinds.append(kind)
        elif isinstance(event, ChartReady):
            self._append(ChartPart(chart=event.chart, result_id=event.result_id))
        elif isinstance(event, ChartPageReady):
            self._append(event.page)
        elif isinstance(event, SuggestedActions):
            self._append(SuggestedActionsPart(actions=event.actions))
        elif isinstance(event, FinalMessage):
            self._parts, self._kinds = list(event.message.parts), ["final"] * len(event.message.parts)
        else:
            return False
        return True

    def _append(self, part: ContentPart) -> None:
        self._parts.append(part)
        self._kinds.append(part.type)

    def build(self) -> list[ContentPart]:
        built: list[ContentPart] = []
        for kind, part in zip(self._kinds, self._parts, strict=True):
            if isinstance(part, list):
                text = "".join(part)
                built.append(TextPart(text=text) if kind == "text" else ThinkingPart(text=text))
            else:
                built.append(part)
        return built


def progress_line(event: Event) -> str | None:
    """The line a poller sees for this event (a tool running, an engine step), if it makes one."""
    if isinstance(event, Progress):
        return event.message
    if isinstance(event, ToolCallStarted):
        return f"Running {event.tool}"
    if isinstance(event, ToolCallFinished):
        return f"{event.tool}: {event.summary}"
    return None
