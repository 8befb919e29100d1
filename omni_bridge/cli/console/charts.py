"""Charts in the terminal: horizontal bars for categories, a braille line chart for time series.

Which one is a matter of the first column: dates, months, quarters or years (or a label that says so) make a
time series, drawn as a line so the trend reads left to right; anything else is a set of categories, drawn as
bars (Rich's `Bar`, to an eighth of a character). Rich has no line chart: `line_chart` plots the points on a
grid of braille dots (2×4 per character), joined by straight segments, with the axis range on the left and
the first and last labels underneath. Both are labelled (`bar chart` / `line chart`) and plain in a pipe.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from rich.bar import Bar
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from omni_bridge.cli.console.render import format_number, truncate
from omni_bridge.tools import ChartSeries, DataChart

__all__ = ["bar_chart", "chart_renderable", "is_time_series", "line_chart"]

_TIME_LABEL = re.compile(r"\b(date|day|week|month|quarter|year|time|period|hour)s?\b", re.IGNORECASE)
_TIME_VALUE = re.compile(
    r"\d{4}(-\d{2}(-\d{2})?([T ]\d{2}:\d{2}(:\d{2})?)?|-?Q[1-4]|-W\d{2})?"
    r"|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?( \d{2,4})?",
    re.IGNORECASE,
)
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
"""The braille bit of the dot in row `dy` (0..3), column `dx` (0..1) of a character cell."""
LINE_ROWS = 8
"""Character rows of a line chart's plot (32 dots high)."""


def is_time_series(chart: DataChart) -> bool:
    """True when the chart's x axis is time: its label says so, or every label is a date, month, quarter or year."""
    labels = [point.x for series in chart.series[:1] for point in series.points]
    if len(labels) < 2:
        return False
    if chart.x_label and _TIME_LABEL.search(chart.x_label.replace("_", " ")):
        return True
    return all(_TIME_VALUE.fullmatch(label.strip()) for label in labels)


def chart_renderable(chart: DataChart, *, width: int, styled: bool) -> RenderableType | None:
    """The chart as drawn under an answer: a line chart for time, bars for categories; `None` if neither fits.

    More than two series (or more than three over time) do not read as bars or lines in a terminal: the
    caller draws those as a table.
    """
    series = [one for one in chart.series if one.points]
    if not series:
        return None
    if is_time_series(chart) and len(series) <= 3:
        return line_chart(chart, width=width, styled=styled)
    if len(series) <= 2:
        return bar_chart(chart, width=width, styled=styled)
    return None


def _title(chart: DataChart, kind: str, styled: bool) -> Text:
    name = chart.title or ", ".join(series.name for series in chart.series)
    by = f" by {chart.x_label}" if chart.x_label and chart.x_label not in name else ""
    title = Text(f"{name}{by}", style="bold" if styled else "")
    title.append(f"  ({kind})", style="dim" if styled else "")
    return title


def bar_chart(
    chart: DataChart, *, width: int, styled: bool, max_points: int = 20, max_label: int = 24
) -> RenderableType:
    """One bar per point, each series scaled on its own so its largest magnitude fills the room left by labels.

    Negative values get a red bar as long as their magnitude and keep their sign in the number; an empty value
    shows `–` and no bar; a value too small for an eighth of a character still shows the thinnest bar.
    """
    parts: list[RenderableType] = [_title(chart, "bar chart", styled)]
    series_list = [series for series in chart.series if series.points]
    for series in series_list:
        points = series.points[:max_points]
        if len(series_list) > 1:
            parts.append(Text(series.name, style="underline" if styled else ""))
        labels = [truncate(point.x, max_label) for point in points]
        values = ["–" if point.y is None else format_number(point.y) for point in points]
        cells = max(10, width - 2 - max(map(len, labels)) - 2 - max(map(len, values)) - 2 - 1)
        largest = max((abs(point.y) for point in points if point.y is not None), default=0.0) or 1.0
        grid = Table.grid(padding=(0, 0, 0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(width=cells, no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        for label, value, point in zip(labels, values, points, strict=True):
            size = 0.0 if point.y is None else max(abs(point.y), 1.5 * largest / (cells * 8) if point.y else 0.0)
            colour = "red" if point.y is not None and point.y < 0 else "cyan"
            grid.add_row(label, Bar(largest, 0, size, width=cells, color=colour if styled else "default"), value)
        parts.append(grid)
        if len(series.points) > len(points):
            more = len(series.points) - len(points)
            parts.append(Text(f"  … {more:,} more point{'s' if more != 1 else ''}", style="dim"))
    return Group(*parts)


def line_chart(chart: DataChart, *, width: int, styled: bool, rows: int = LINE_ROWS) -> RenderableType:
    """Each series as a line of braille dots over the points in order, with its range and first/last labels.

    The plot is at most 72 characters wide (two dots each); empty values break the line.
    """
    parts: list[RenderableType] = [_title(chart, "line chart", styled)]
    series_list = [series for series in chart.series if series.points]
    for series in series_list:
        if len(series_list) > 1:
            parts.append(Text(series.name, style="underline" if styled else ""))
        parts.append(_plot(series, width=width, rows=rows, styled=styled))
    return Group(*parts)


def _plot(series: ChartSeries, *, width: int, rows: int, styled: bool) -> Text:
    values = [point.y for point in series.points]
    known = [value for value in values if value is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    top, bottom = format_number(high), format_number(low)
    axis = max(len(top), len(bottom))
    cells = max(10, min(72, width - axis - 4))
    dots_x, dots_y = cells * 2, rows * 4
    grid = [[0] * cells for _ in range(rows)]

    def place(x: int, y: int) -> None:
        grid[y // 4][x // 2] |= _DOTS[y % 4][x % 2]

    spots = [
        None if value is None else (_scale(i, len(values), dots_x), _level(value, low, high, dots_y))
        for i, value in enumerate(values)
    ]
    for here, there in itertools.pairwise(spots):
        if here is not None and there is not None:
            for x, y in _segment(here, there):
                place(x, y)
    for spot in spots:
        if spot is not None:
            place(*spot)
    text = Text()
    for index, row in enumerate(grid):
        label = top if index == 0 else bottom if index == rows - 1 else ""
        text.append(f"  {label:>{axis}} ┤", style="dim" if styled else "")
        text.append(
            "".join(chr(0x2800 + bits) if bits else " " for bits in row).rstrip(), style="cyan" if styled else ""
        )
        text.append("\n")
    first, last = series.points[0].x, series.points[-1].x
    gap = max(1, cells - len(first) - len(last))
    text.append(" " * (axis + 3) + "└" + "─" * cells + "\n", style="dim" if styled else "")
    text.append(" " * (axis + 4) + truncate(first, cells // 2) + " " * gap + truncate(last, cells // 2))
    return text


def _scale(index: int, count: int, dots: int) -> int:
    return 0 if count < 2 else round(index * (dots - 1) / (count - 1))


def _level(value: float, low: float, high: float, dots: int) -> int:
    """The dot row of `value` (0 at the top), the range spread over all rows; a flat series sits in the middle."""
    if high == low:
        return dots // 2
    return round((high - value) / (high - low) * (dots - 1))


def _segment(start: tuple[int, int], end: tuple[int, int]) -> Sequence[tuple[int, int]]:
    """The dots of a straight line from `start` to `end`, both included."""
    (x0, y0), (x1, y1) = start, end
    steps = max(abs(x1 - x0), abs(y1 - y0), 1)
    return [(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps)) for i in range(steps + 1)]
