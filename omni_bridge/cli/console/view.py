"""`AnswerView`: draws one answer's events on a terminal (or a pipe) as they arrive.

On a terminal the answer is a `rich.live.Live` region: the text so far rendered as Markdown (re-rendered as
it grows, so bold, lists, tables and code fences look right while they stream), under it a spinner saying
what runs now (a tool, Omni's AI) with the time elapsed. A finished tool call becomes one line above it
(`✓ getData(revenue by region) · 4 rows · 1.2s`), and the text before a tool call is printed for good, so
the screen reads in order. Through a pipe the same news comes as plain lines and the text as the model
wrote it, with no escape code. Once the answer is over, the result is drawn (a line chart for a time
series, bars for categories, else a table), then how it was computed (one line per query behind it), the
numbered follow-ups and the link to Omni.

The view only writes; the session fetches what it needs (a result table) and hands it over, so the view
stays synchronous and testable with a `StringIO` behind its `Console`. Every call comes from the loop
thread (events and the ticker alike), so the live region is redrawn by `tick` rather than Rich's own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

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
from omni_bridge.cli.console.charts import chart_renderable
from omni_bridge.cli.console.markdown import answer_markdown
from omni_bridge.cli.console.render import format_number, provenance_lines, truncate
from omni_bridge.cli.console.tables import result_table
from omni_bridge.tools import DataChart, QueryProvenance

__all__ = ["AnswerView", "ResultTable", "ToolCallRecord"]


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
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


@dataclass
class AnswerView:
    """Renders the events of one answer to `console`.

    Args:
        console: where to write (see `render.make_console`: styled on a terminal, plain into a pipe).
        live: a live region with a spinner (a terminal); otherwise text and news are plain lines.
        show_answer: False writes only the progress (`ask --json` on a terminal's stderr).
        clock: seconds, monotonic (tests pass their own).
    """

    console: Console
    live: bool
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
    _started: float = field(init=False)
    _status: _Status | None = field(init=False, default=None)
    _segment: str = field(init=False, default="")
    """Text of the answer not yet printed for good (a terminal), or not yet ended by a line end (a pipe)."""
    _streamed: bool = field(init=False, default=False)
    _region: Live | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._started = self.clock()
        if self.live:
            self._status = _Status("thinking")
            self._region = Live(
                get_renderable=self._renderable,
                console=self.console,
                auto_refresh=False,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="visible",
            )
            self._region.start(refresh=True)

    # --- events ----------------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Draw one event (or remember it for the end of the answer)."""
        if isinstance(event, TextDelta):
            self._text(event.text)
        elif isinstance(event, ThinkingDelta):
            if self.live and self._status is None:
                self._status = _Status("thinking")
        elif isinstance(event, ToolCallStarted):
            self.tool_calls.append(ToolCallRecord(event.call_id, event.tool, dict(event.arguments)))
            self._running(f"{event.tool}{_arguments(event.arguments)}")
        elif isinstance(event, ToolCallFinished):
            self._tool_finished(event)
        elif isinstance(event, Progress):
            self._running(event.message)
        elif isinstance(event, ChartReady):
            self.charts.append((event.chart, event.result_id))
        elif isinstance(event, SuggestedActions):
            self.actions = list(event.actions)
        elif isinstance(event, UsageReport):
            self.usage = event.total
        elif isinstance(event, ErrorEvent):
            self.errors.append(event)
            if self.show_answer:
                self._print(Text(f"✗ {event.message}", style="bold red"))
        elif isinstance(event, FinalMessage):
            self.final = event.message
        self.tick()

    def tick(self) -> None:
        """Redraw the live region (the spinner and the time elapsed); called a few times a second on a terminal."""
        if self._region is not None:
            self._region.refresh()
        else:
            self.console.file.flush()

    def close(self) -> None:
        """Leave the text on screen without the spinner, and end an unfinished line (after the answer, or
        when it was cancelled)."""
        self._status = None
        if self._region is not None:
            self._region.stop()  # the last drawing (the text so far) stays
            self._region = None
            self._segment = ""
        elif self._segment:
            self._raw("\n")
            self._segment = ""
        self.console.file.flush()

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
        """Draw what follows the text: the chart (or `result` as a table), how it was computed, the follow-ups,
        the Omni link."""
        self.close()
        if not self.show_answer:
            return
        final = self.final
        if final is not None and not self._streamed and not self.errors and final.text:
            # An engine that sent no text deltas: the text is only in the final message.
            if self.live:
                self._print(answer_markdown(final.text))
            else:
                self._raw(final.text.rstrip("\n") + "\n")
        styled = self.live
        width = self.console.width
        blocks: list[list[RenderableType]] = []  # each block follows a blank line; a `Text` line is never wrapped
        chart = self.chart()
        drawn = chart_renderable(chart[0], width=width, styled=styled) if chart is not None else None
        if drawn is not None:
            blocks.append([drawn])
        elif chart is not None:
            columns = [chart[0].x_label or "", *(series.name for series in chart[0].series)]
            blocks.append([_or_nothing(result_table(columns, _chart_rows(chart[0]), styled=styled))])
        elif result is not None:
            blocks.append([_or_nothing(result_table(result.columns, result.rows, styled=styled, total=result.total))])
        link = self.omni_link()
        how = provenance_lines(self.provenance(), shown_link=link)
        if how:
            blocks.append(list(how))
        buttons = self.follow_ups()
        if buttons:
            lines: list[RenderableType] = [Text("Follow-ups (type the number to ask):", style="bold")]
            lines += [Text(f"  {n}. {button.label}") for n, button in enumerate(buttons, 1)]
            blocks.append(lines)
        if link:
            blocks.append([Text.assemble("Open in Omni: ", (link, "underline"))])
        for block in blocks:
            self._print(Text(""))
            for line in block:
                self._print(line)
        self.console.file.flush()

    # --- drawing -----------------------------------------------------------------------------------------

    def _renderable(self) -> RenderableType:
        """What the live region shows now: the text since the last tool call, then the spinner line."""
        parts: list[RenderableType] = []
        if self._segment and self.show_answer:
            parts.append(answer_markdown(self._segment))
        status = self._status
        if status is not None:
            elapsed = self.clock() - self._started
            line = truncate(f"{status.activity}  {elapsed:.1f}s", max(10, self.console.width - 3))
            status.spinner.update(text=Text(line, style="dim"))
            parts.append(status.spinner)
        return Group(*parts)

    def _text(self, text: str) -> None:
        self._streamed = True
        if not self.show_answer:
            return
        if self.live:
            self._segment += text
            self._status = None  # text is coming: the spinner gives way until the next tool call
            return
        self._raw(text)
        self._segment = "" if text.endswith("\n") else self._segment + text

    def _running(self, activity: str) -> None:
        """Something runs now: on a terminal the text so far is printed for good and the spinner says what
        runs; through a pipe a plain `· …` line."""
        if self.live:
            self._commit_text()
            self._status = _Status(activity)
        elif self.show_answer:
            self._print(Text(f"· {activity}"))

    def _tool_finished(self, event: ToolCallFinished) -> None:
        record = None
        for call in self.tool_calls:
            if call.call_id == event.call_id:
                call.is_error, call.summary, call.row_count = event.is_error, event.summary, event.row_count
                call.result_id, call.elapsed_ms = event.result_id, event.elapsed_ms
                record = call
        seconds = f"{event.elapsed_ms / 1000:.1f}s"
        mark = "✗" if event.is_error else "✓"
        if self.live:
            arguments = _arguments(record.arguments) if record is not None else ""
            what = f"{event.row_count:,} row{'s' if event.row_count != 1 else ''}" if event.row_count else event.summary
            line = Text(
                f"{mark} {event.tool}{arguments} · {what} · {seconds}", style="red" if event.is_error else "dim"
            )
            if not event.is_error:
                line.stylize("green", 0, 1)
            self._print(line)
            running = [call for call in self.tool_calls if call.is_error is None]
            last = running[-1] if running else None
            self._status = _Status(f"{last.tool}{_arguments(last.arguments)}" if last else "thinking")
        elif self.show_answer:
            self._print(Text(f"{mark} {event.tool}: {event.summary} ({seconds})"))

    def _commit_text(self) -> None:
        """Print the live text for good (above the live region), so what follows comes under it."""
        if self._segment and self._region is not None:
            self._region.console.print(answer_markdown(self._segment))
            self._segment = ""

    def _print(self, renderable: RenderableType) -> None:
        """A whole block; through a pipe it first ends the line the streamed text left open."""
        if self._region is None and self._segment:
            self._raw("\n")
            self._segment = ""
        self.console.print(renderable, soft_wrap=isinstance(renderable, Text))

    def _raw(self, text: str) -> None:
        """Text as it came (a pipe): not wrapped, not styled."""
        self.console.file.write(text)


def _or_nothing(table: RenderableType | None) -> RenderableType:
    return table if table is not None else Text("")


def _arguments(arguments: dict[str, Any]) -> str:
    """A tool call's arguments in one short line: `(revenue by region)` or `(topic=orders, limit=5)`."""
    if not arguments:
        return ""
    if len(arguments) == 1:
        (value,) = arguments.values()
        return f"({truncate(' '.join(str(value).split()), 60)})"
    shown = ", ".join(f"{name}={' '.join(str(value).split())}" for name, value in arguments.items())
    return "(" + truncate(shown, 60) + ")"


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
