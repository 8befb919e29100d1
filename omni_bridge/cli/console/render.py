"""Pure text renderers for the console: styles, numbers, tables, bar charts and streamed markdown.

Kept free of I/O and of the event types so each can be tested as a plain function of its input: the
console view (`omni_bridge.cli.console.view`) decides *when* to draw, this module only decides *what* the
lines look like. Styling is ANSI SGR codes, used only when the caller says the terminal takes them; with
styling off every function returns plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from omni_bridge.tools import DataChart, QueryProvenance, parse_number

__all__ = [
    "CLEAR_LINE",
    "MarkdownStream",
    "Style",
    "bar_chart",
    "format_number",
    "provenance_lines",
    "table",
    "truncate",
]

CLEAR_LINE = "\r\x1b[2K"
"""Carriage return, then erase the whole line: how a status line is redrawn in place."""

_EIGHTHS = " ▏▎▍▌▋▊▉"
"""Partial blocks, by eighths of a cell: a bar's end is drawn to 1/8 of a character."""
_FULL = "█"
_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_YEARISH = re.compile(r"\b(year|yr|id|zip|code|phone)s?\b", re.IGNORECASE)
"""Numeric-looking columns whose values are names, not quantities: no thousands separators for them."""


@dataclass(frozen=True, slots=True)
class Style:
    """ANSI styling, or none: every method returns its text unchanged when `enabled` is false."""

    enabled: bool

    def _wrap(self, text: str, on: str, off: str) -> str:
        return f"\x1b[{on}m{text}\x1b[{off}m" if self.enabled and text else text

    def bold(self, text: str) -> str:
        return self._wrap(text, "1", "22")

    def dim(self, text: str) -> str:
        return self._wrap(text, "2", "22")

    def red(self, text: str) -> str:
        return self._wrap(text, "31", "39")

    def green(self, text: str) -> str:
        return self._wrap(text, "32", "39")

    def cyan(self, text: str) -> str:
        return self._wrap(text, "36", "39")

    def underline(self, text: str) -> str:
        return self._wrap(text, "4", "24")


def format_number(value: float) -> str:
    """A number for people: thousands separators, no decimals for whole numbers, two otherwise.

    Examples:
        `1234567.0` → `1,234,567`; `1234.5` → `1,234.50`; `-0.125` → `-0.12`.
    """
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}"


def truncate(text: str, width: int) -> str:
    """`text` cut to `width` characters, ending in `…` when it was cut."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def provenance_lines(queries: Sequence[QueryProvenance], *, style: Style) -> list[str]:
    """How the answer was computed, one line per query behind it (usually one), e.g.
    `How this was computed: topic order_items · fields … · filters orders.created_at 2026-10-01 to 2026-10-31 · …`.

    A partial table's line is red: it must not read like the rest of the footer.
    """
    lines = []
    for query in queries:
        line = f"How this was computed: {query.line()}"
        lines.append(style.red(line) if query.cut_reason == "preview" else style.dim(line))
    return lines


# --- tables ----------------------------------------------------------------------------------------------


def _numeric_column(cells: Sequence[str]) -> bool:
    """True when every cell is a number or empty, and at least one is a number."""
    seen = False
    for cell in cells:
        try:
            value = parse_number(cell)
        except ValueError:
            return False
        seen = seen or value is not None
    return seen


def _shown_cell(cell: str, *, reformat: bool) -> str:
    """A plain number gets thousands separators; anything already formatted (`$1,234`, `12%`) stays."""
    text = cell.strip()
    if reformat and _PLAIN_NUMBER.fullmatch(text):
        return format_number(float(text))
    return text


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    style: Style,
    limit: int = 15,
    total: int | None = None,
    max_cell: int = 40,
) -> list[str]:
    """A result table as aligned lines: header, rule, rows (numbers right-aligned, with separators).

    Args:
        columns: the header.
        rows: the rows, as the cells' text (CSV cells).
        style: the header is bold when styling is on.
        limit: rows shown at most; a last line says how many more there are.
        total: rows the result has in all, when more than `rows` (e.g. Omni truncated it).
        max_cell: cells longer than this are cut with `…`.

    Returns:
        The lines, without line ends; none when there are no columns.
    """
    if not columns:
        return []
    shown = [list(row) + [""] * (len(columns) - len(row)) for row in rows[:limit]]
    numeric = [_numeric_column([row[i] for row in shown]) and bool(shown) for i in range(len(columns))]
    cells = [
        [
            truncate(_shown_cell(cell, reformat=numeric[i] and not _YEARISH.search(columns[i])), max_cell)
            for i, cell in enumerate(row[: len(columns)])
        ]
        for row in shown
    ]
    header = [truncate(str(name), max_cell) for name in columns]
    widths = [max([len(header[i]), *(len(row[i]) for row in cells)]) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if numeric[i] else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [style.bold(line(header)), "  ".join("─" * width for width in widths)]
    out.extend(line(row) for row in cells)
    more = max(len(rows), total or 0) - len(shown)
    if more > 0:
        out.append(style.dim(f"… {more:,} more row{'s' if more != 1 else ''}"))
    return out


# --- bar charts ------------------------------------------------------------------------------------------


def _bar(fraction: float, cells: int) -> str:
    """A bar `fraction` (0..1) of `cells` characters long, to the eighth of a character; never empty above 0."""
    eighths = round(max(0.0, min(1.0, fraction)) * cells * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1
    full, rest = divmod(eighths, 8)
    return _FULL * full + (_EIGHTHS[rest] if rest else "")


def bar_chart(chart: DataChart, *, width: int, style: Style, max_points: int = 20, max_label: int = 24) -> list[str]:
    """A horizontal bar chart of each series, scaled so the longest bar fills the width left by labels.

    Each series is scaled on its own (its largest absolute value is a full bar); negative values get a bar
    as long as their magnitude and keep their sign in the number. Empty values show `–` and no bar.

    Args:
        chart: the chart (one label per point, one series per numeric column).
        width: the terminal's width in characters; the lines never exceed it (down to a floor of 10 for bars).
        style: the title is bold and the bars are cyan when styling is on.
        max_points: points shown per series at most; a last line says how many more there are.
        max_label: labels longer than this are cut with `…`.

    Returns:
        The lines, without line ends; none when the chart has no points.
    """
    out: list[str] = []
    series_list = [series for series in chart.series if series.points]
    if not series_list:
        return out
    if chart.title:
        out.append(style.bold(chart.title))
    for series in series_list:
        points = series.points[:max_points]
        if len(series_list) > 1:
            out.append(style.underline(series.name))
        labels = [truncate(point.x, max_label) for point in points]
        values = ["–" if point.y is None else format_number(point.y) for point in points]
        label_width = max(len(label) for label in labels)
        value_width = max(len(value) for value in values)
        bar_cells = max(10, width - 2 - label_width - 2 - 2 - value_width)
        largest = max((abs(point.y) for point in points if point.y is not None), default=0.0)
        for label, value, point in zip(labels, values, points, strict=True):
            fraction = abs(point.y) / largest if point.y is not None and largest > 0 else 0.0
            bar = _bar(fraction, bar_cells)
            padded = bar + " " * (bar_cells - len(bar))
            painted = style.red(padded) if point.y is not None and point.y < 0 else style.cyan(padded)
            out.append(f"  {label.ljust(label_width)}  {painted}  {value.rjust(value_width)}")
        if len(series.points) > len(points):
            more = len(series.points) - len(points)
            out.append(style.dim(f"  … {more:,} more point{'s' if more != 1 else ''}"))
    return out


# --- streamed markdown -----------------------------------------------------------------------------------

_HEADING = re.compile(r"#{1,6} ")
_HEADING_START = re.compile(r"#{1,6}")
_BULLET = re.compile(r"[-*+] ")
_FENCE = "```"
_RULE = re.compile(r":?-{3,}:?")
"""A cell of a markdown table's rule line (`|---|:---:|`)."""


def _cells(line: str) -> list[str]:
    """The cells of a markdown table row, without their emphasis markers."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip().replace("**", "").replace("`", "") for cell in inner.split("|")]


class MarkdownStream:
    """Renders markdown as it streams in: bold, inline code, headings, bullets, code fences and tables.

    Text is written as soon as it can be decided, so an answer appears word by word; only a marker that is
    cut between two chunks (a lone `*`, a `#` at a line start, the start of a fence) is held back until the
    next chunk tells what it is, and a table's rows until the table ends (its columns are aligned then).
    With styling off the text passes through unchanged: a pipe gets the markdown as the model wrote it.
    """

    def __init__(self, style: Style) -> None:
        self._style = style
        self._pending = ""
        self._line_start = True
        self._bold = False
        self._code = False
        self._heading = False
        self._fence = False
        self._table: list[list[str]] = []

    def _reset(self) -> None:
        self._pending = ""
        self._line_start = True
        self._bold = self._code = self._heading = self._fence = False
        self._table = []

    def feed(self, text: str) -> str:
        """The terminal text for `text`, as far as it can be decided now."""
        if not self._style.enabled:
            return text
        self._pending += text
        out: list[str] = []
        while self._pending:
            if self._line_start:
                decided = self._line_prefix(out)
                if not decided:
                    break
                continue
            if not self._inline(out):
                break
        return "".join(out)

    def finish(self) -> str:
        """Whatever was held back, and the codes that end any open style; the stream starts afresh."""
        if not self._style.enabled:
            return ""
        if self._line_start and self._pending.startswith("|") and not self._fence:
            self._table.append(_cells(self._pending))  # the table's last row, with no line end
            self._pending = ""
        out = self._table_text() + self._pending
        if self._bold or self._code or self._heading or self._fence:
            out += "\x1b[0m"
        self._reset()
        return out

    def _line_prefix(self, out: list[str]) -> bool:
        """Handle what a line starts with; False when more text is needed to tell."""
        pending = self._pending
        if _FENCE.startswith(pending) or (pending.startswith(_FENCE) and "\n" not in pending):
            return False  # maybe a fence; a fence line is dropped whole, so wait for its end
        if pending.startswith(_FENCE):
            self._pending = pending[pending.index("\n") + 1 :]
            self._fence = not self._fence
            return True
        if pending.startswith("|") and not self._fence:
            if "\n" not in pending:
                return False  # a table row: kept until the table ends, then drawn aligned
            end = pending.index("\n")
            row = _cells(pending[:end])
            if not all(_RULE.fullmatch(cell) for cell in row):
                self._table.append(row)
            self._pending = pending[end + 1 :]
            return True
        out.append(self._table_text())
        self._line_start = False
        if self._fence:
            out.append("\x1b[2m")  # code lines are dim; `_inline` closes it at the line end
            return True
        if _HEADING_START.fullmatch(pending):
            self._line_start = True
            return False  # `#`, `##`…: a heading if a space follows
        if pending in ("-", "*", "+"):
            self._line_start = True
            return False  # a bullet if a space follows
        heading = _HEADING.match(pending)
        if heading:
            self._pending = pending[heading.end() :]
            self._heading = True
            out.append("\x1b[1;4m")
            return True
        bullet = _BULLET.match(pending)
        if bullet:
            self._pending = pending[bullet.end() :]
            out.append("• ")
        return True

    def _table_text(self) -> str:
        """The table held so far, drawn (header bold, numbers right-aligned); empty when none is held."""
        if not self._table:
            return ""
        header, *rows = self._table
        self._table = []
        return "".join(line + "\n" for line in table(header, rows, style=self._style, limit=len(rows)))

    def _inline(self, out: list[str]) -> bool:
        """Write the current line's text up to its end; False when a marker needs the next chunk."""
        while self._pending:
            char = self._pending[0]
            if char == "\n":
                if self._fence:
                    out.append("\x1b[22m")
                if self._heading:
                    out.append("\x1b[22;24m")
                    self._heading = False
                out.append("\n")
                self._pending = self._pending[1:]
                self._line_start = True
                return True
            if self._fence:
                end = self._pending.find("\n")
                chunk = self._pending if end < 0 else self._pending[:end]
                out.append(chunk)
                self._pending = self._pending[len(chunk) :]
                continue
            if char == "`":
                self._code = not self._code
                out.append("\x1b[36m" if self._code else "\x1b[39m")
                self._pending = self._pending[1:]
                continue
            if char == "*" and not self._code:
                if len(self._pending) < 2:
                    return False
                if self._pending[1] == "*":
                    self._bold = not self._bold
                    out.append("\x1b[1m" if self._bold else "\x1b[22m")
                    self._pending = self._pending[2:]
                    continue
            out.append(char)
            self._pending = self._pending[1:]
        return True
