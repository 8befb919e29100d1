"""`AnswerView`: draws one answer's events on a terminal (or a pipe) as they arrive.

Text streams in as it comes. On a terminal, a status line at the bottom says what the engine is doing
(a tool running, Omni's AI working) with the time elapsed, redrawn in place and erased before more text;
through a pipe the same news comes as plain lines, so a log reads in order. Once the answer is over, the
result is drawn (a bar chart, or a table), then how it was computed (one line per query behind it), the
numbered follow-ups and the link to Omni.

The view only writes; the session fetches what it needs (a result table) and hands it over, so the view
stays synchronous and testable with a `StringIO`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from omni_bridge.agent import (
    ActionButton,
    AssistantMessage,
    ChartPart,
    ChartReady,
    ErrorEvent,
    Event,
    FinalMessage,
    Progress,
    ProvenancePart,
    StructuredActionPart,
    SuggestedActions,
    SuggestedActionsPart,
    TextDelta,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UsageReport,
)
from omni_bridge.cli.console.render import (
    CLEAR_LINE,
    MarkdownStream,
    Style,
    bar_chart,
    format_number,
    provenance_lines,
    table,
    truncate,
)
from omni_bridge.tools import DataChart, QueryProvenance

__all__ = ["AnswerView", "ResultTable", "ToolCallRecord"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@dataclass
class ToolCallRecord:
    """One tool call of the answer, as `ask --json` reports it."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    is_error: bool | None = None
    summary: str | None = None
    row_count: int | None = None
    result_id: str | None = None
    elapsed_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "is_error": self.is_error,
            "summary": self.summary,
            "row_count": self.row_count,
            "result_id": self.result_id,
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass(frozen=True, slots=True)
class ResultTable:
    """A result table to draw: its header, its first rows, and how many rows it has in all."""

    columns: list[str]
    rows: list[list[str]]
    total: int


@dataclass
class _Status:
    activity: str
    shown: bool = False


@dataclass
class AnswerView:
    """Renders the events of one answer to `out`.

    Args:
        out: where to write.
        style: ANSI styling, or none.
        live: redraw a status line in place (a terminal); otherwise status news are plain lines.
        width: the terminal's width, for charts and the status line.
        show_answer: False writes only the status line (`ask --json` on a terminal's stderr).
        clock: seconds, monotonic (tests pass their own).
    """

    out: TextIO
    style: Style
    live: bool
    width: int = 80
    show_answer: bool = True
    clock: Callable[[], float] = time.monotonic
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    """Every tool call of the answer, in the order they started."""
    charts: list[tuple[DataChart, str | None]] = field(default_factory=list)
    """Each `ChartReady` (chart, result id), in order."""
    actions: list[ActionButton] = field(default_factory=list)
    errors: list[ErrorEvent] = field(default_factory=list)
    usage: Usage | None = None
    """The conversation's running total, from the last `UsageReport`."""
    final: AssistantMessage | None = None
    _markdown: MarkdownStream = field(init=False)
    _started: float = field(init=False)
    _status: _Status | None = field(init=False, default=None)
    _mid_line: bool = field(init=False, default=False)
    _streamed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._markdown = MarkdownStream(self.style)
        self._started = self.clock()
        if self.live:
            self._set_status("thinking")

    # --- events ----------------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Draw one event (or remember it for the end of the answer)."""
        if isinstance(event, TextDelta):
            self._text(event.text)
        elif isinstance(event, ThinkingDelta):
            if self.live and not self._mid_line:
                self._set_status("thinking")
        elif isinstance(event, ToolCallStarted):
            self.tool_calls.append(ToolCallRecord(event.call_id, event.tool, dict(event.arguments)))
            self._news(f"{event.tool}{_arguments(event.arguments)}", running=True)
        elif isinstance(event, ToolCallFinished):
            self._tool_finished(event)
        elif isinstance(event, Progress):
            self._news(event.message, running=True)
        elif isinstance(event, ChartReady):
            self.charts.append((event.chart, event.result_id))
        elif isinstance(event, SuggestedActions):
            self.actions = list(event.actions)
        elif isinstance(event, UsageReport):
            self.usage = event.total
        elif isinstance(event, ErrorEvent):
            self.errors.append(event)
            self._line(self.style.red(f"✗ {event.message}"), answer=True)
        elif isinstance(event, FinalMessage):
            self.final = event.message
            self._end_text()
        self.out.flush()

    def tick(self) -> None:
        """Redraw the status line with the time elapsed (called a few times a second on a terminal)."""
        if self._status is not None and self.live and not self._mid_line:
            self._draw_status()
            self.out.flush()

    def close(self) -> None:
        """Erase the status line and end an unfinished line (after the answer, or when it was cancelled)."""
        self._clear_status()
        self._end_text()
        self._status = None
        self.out.flush()

    # --- the end of the answer ----------------------------------------------------------------------------

    def chart(self) -> tuple[DataChart, str | None] | None:
        """The chart to draw: the final message's, else the last one that arrived."""
        if self.final is not None:
            for part in reversed(self.final.parts):
                if isinstance(part, ChartPart):
                    return part.chart, part.result_id
        return self.charts[-1] if self.charts else None

    def result_id(self) -> str | None:
        """The result to show as a table when there is no chart: the last tool call that returned rows."""
        for call in reversed(self.tool_calls):
            if call.result_id and call.row_count and not call.is_error:
                return call.result_id
        return None

    def follow_ups(self) -> list[ActionButton]:
        """The suggested follow-up questions: the final message's, else the last `SuggestedActions`."""
        if self.final is not None:
            for part in self.final.parts:
                if isinstance(part, SuggestedActionsPart):
                    return list(part.actions)
        return self.actions

    def omni_link(self) -> str | None:
        if self.final is not None:
            for part in self.final.parts:
                if isinstance(part, StructuredActionPart) and part.action == "open_in_omni" and part.url:
                    return part.url
        return None

    def provenance(self) -> list[QueryProvenance]:
        """The queries behind the final message (none for an answer that ran no query)."""
        if self.final is None:
            return []
        return [query for part in self.final.parts if isinstance(part, ProvenancePart) for query in part.queries]

    def render_result(self, result: ResultTable | None = None) -> None:
        """Draw what follows the text: the chart (or `result` as a table), the follow-ups, the Omni link."""
        self.close()
        if not self.show_answer:
            return
        final = self.final
        if final is not None and not self._streamed and not self.errors and final.text:
            # An engine that sent no text deltas: the text is only in the final message.
            self._write(self._markdown.feed(final.text) + self._markdown.finish())
            self._end_text()
        lines: list[str] = []
        chart = self.chart()
        if chart is not None and len(chart[0].series) <= 2:
            lines += ["", *bar_chart(chart[0], width=self.width, style=self.style)]
        elif chart is not None:
            columns = [chart[0].x_label or "", *(series.name for series in chart[0].series)]
            rows = _chart_rows(chart[0])
            lines += ["", *table(columns, rows, style=self.style)]
        elif result is not None:
            lines += ["", *table(result.columns, result.rows, style=self.style, total=result.total)]
        how = provenance_lines(self.provenance(), style=self.style)
        lines += ["", *how] if how else []
        buttons = self.follow_ups()
        if buttons:
            lines += ["", self.style.bold("Follow-ups (type the number to ask):")]
            lines += [f"  {n}. {button.label}" for n, button in enumerate(buttons, 1)]
        link = self.omni_link()
        if link:
            lines += ["", f"Open in Omni: {self.style.underline(link)}"]
        for line in lines:
            self._write(line + "\n")
        self.out.flush()

    # --- drawing -----------------------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        self._streamed = True
        if not self.show_answer:
            return
        self._clear_status()
        shown = self._markdown.feed(text)
        if shown:
            self._write(shown)
            self._mid_line = not shown.endswith("\n")

    def _end_text(self) -> None:
        if not self.show_answer:
            return
        rest = self._markdown.finish()
        if rest:
            self._write(rest)
            self._mid_line = not rest.endswith("\n")
        if self._mid_line:
            self._write("\n")
            self._mid_line = False

    def _tool_finished(self, event: ToolCallFinished) -> None:
        for call in self.tool_calls:
            if call.call_id == event.call_id:
                call.is_error, call.summary, call.row_count = event.is_error, event.summary, event.row_count
                call.result_id, call.elapsed_ms = event.result_id, event.elapsed_ms
        seconds = f"{event.elapsed_ms / 1000:.1f}s"
        if event.is_error:
            self._news(self.style.red(f"✗ {event.tool}: {event.summary} ({seconds})"), running=False)
        else:
            self._news(self.style.dim(f"✓ {event.tool}: {event.summary} ({seconds})"), running=False)
        running = [call for call in self.tool_calls if call.is_error is None]
        if self.live:
            self._set_status(f"{running[-1].tool}{_arguments(running[-1].arguments)}" if running else "thinking")

    def _news(self, line: str, *, running: bool) -> None:
        """A piece of progress: the live status (for what is running now), or a plain line."""
        if self.live and running:
            self._end_text()
            self._set_status(line)
        elif self.live:
            self._line(line, answer=False)
        elif self.show_answer:
            self._line(line if not running else f"· {line}", answer=False)

    def _line(self, line: str, *, answer: bool) -> None:
        """A whole line above the status line (which is redrawn below it)."""
        if not self.show_answer and answer:
            return
        self._clear_status()
        self._end_text()
        self._write(line + "\n")
        if self.live and self._status is not None:
            self._draw_status()

    def _set_status(self, activity: str) -> None:
        shown = self._status is not None and self._status.shown
        self._status = _Status(activity, shown=shown)
        if not self._mid_line:
            self._draw_status()

    def _draw_status(self) -> None:
        status = self._status
        if status is None or not self.live:
            return
        elapsed = self.clock() - self._started
        frame = _SPINNER[int(elapsed * 10) % len(_SPINNER)]
        line = truncate(f"{frame} {status.activity}  {elapsed:.1f}s", max(10, self.width - 1))
        self.out.write(CLEAR_LINE + self.style.dim(line))
        status.shown = True

    def _clear_status(self) -> None:
        if self._status is not None and self._status.shown:
            self.out.write(CLEAR_LINE)
            self._status.shown = False

    def _write(self, text: str) -> None:
        self.out.write(text)


def _arguments(arguments: dict[str, Any]) -> str:
    """A tool call's arguments in one short line: `(revenue by region)` or `(topic=orders, limit=5)`."""
    if not arguments:
        return ""
    if len(arguments) == 1:
        (value,) = arguments.values()
        return f"({truncate(str(value), 60)})"
    return "(" + truncate(", ".join(f"{name}={value}" for name, value in arguments.items()), 60) + ")"


def _chart_rows(chart: DataChart) -> list[list[str]]:
    labels = [point.x for point in chart.series[0].points]
    rows: list[list[str]] = []
    for index, label in enumerate(labels):
        row = [label]
        for series in chart.series:
            y = series.points[index].y if index < len(series.points) else None
            row.append("" if y is None else format_number(y))
        rows.append(row)
    return rows
