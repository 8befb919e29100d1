"""The console's renderers as plain functions of their input: numbers, the result table, charts, Markdown.

Each is drawn through `make_console` into a `StringIO`, plain (a pipe) or styled (a terminal), and the text
read back.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import RenderableType

from omni_bridge.cli.console.charts import bar_chart, chart_renderable, is_time_series, line_chart
from omni_bridge.cli.console.markdown import answer_markdown, right_align_numbers
from omni_bridge.cli.console.render import format_number, make_console
from omni_bridge.cli.console.tables import result_table
from omni_bridge.tools import ChartPoint, ChartSeries, DataChart

_SGR = re.compile(r"\x1b\[[0-9;]*m")


def drawn(renderable: RenderableType | None, *, styled: bool = False, width: int = 80) -> str:
    out = io.StringIO()
    make_console(out, terminal=styled, width=width).print(renderable)
    return out.getvalue()


def chart(*points: tuple[str, float | None], title: str | None = "revenue by region", x: str = "region") -> DataChart:
    return DataChart(
        title=title,
        x_label=x,
        series=[ChartSeries(name="revenue", points=[ChartPoint(x=x, y=y) for x, y in points])],
    )


def bar_of(line: str) -> str:
    return "".join(ch for ch in line if ch in "█▏▎▍▌▋▊▉")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1234567.0, "1,234,567"), (1234.5, "1,234.50"), (-0.125, "-0.12"), (0.0, "0"), (-98765.4321, "-98,765.43")],
)
def test_numbers_get_thousands_separators_and_decimals_only_when_they_have_some(value: float, shown: str) -> None:
    assert format_number(value) == shown


def test_a_table_aligns_numbers_right_with_separators_and_leaves_years_and_formatted_cells_alone() -> None:
    table = result_table(
        ["region", "revenue", "year", "margin"],
        [["West", "1234567.891", "2024", "12%"], ["East", "500", "2025", "$3"]],
        styled=False,
    )

    assert drawn(table).splitlines() == [
        "+--------+--------------+------+--------+",
        "| region |      revenue | year | margin |",
        "+--------+--------------+------+--------+",
        "| West   | 1,234,567.89 | 2024 |    12% |",
        "| East   |          500 | 2025 |     $3 |",
        "+--------+--------------+------+--------+",
    ]


def test_on_a_terminal_the_table_has_rounded_borders_and_a_bold_header_and_the_same_cells() -> None:
    rows = [["West", "1234567.891"], ["East", "500"]]
    styled = drawn(result_table(["region", "revenue"], rows, styled=True), styled=True)

    assert "\x1b[1m" in styled  # the header is bold
    plain = _SGR.sub("", styled).splitlines()
    assert plain[0].startswith("╭") and plain[-1].startswith("╰")
    assert "│ West   │ 1,234,567.89 │" in plain and "│ East   │          500 │" in plain


def test_a_long_table_says_how_many_rows_are_not_shown() -> None:
    rows = [[f"r{n}", str(n)] for n in range(20)]
    lines = drawn(result_table(["name", "n"], rows, styled=False, limit=3, total=1500)).splitlines()

    assert len([line for line in lines if line.startswith("| r")]) == 3
    assert lines[-1].rstrip() == "… 1,497 more rows"


def test_no_columns_no_table() -> None:
    assert result_table([], [], styled=False) is None


def test_the_largest_bar_fills_the_width_left_by_labels_and_numbers_and_the_others_are_in_proportion() -> None:
    lines = drawn(bar_chart(chart(("West", 1e6), ("East", 5e5), ("South", 2.5e5)), width=60, styled=False)).splitlines()

    assert lines[0] == "revenue by region  (bar chart)"
    west, east, south = lines[1:]
    assert west.startswith("West ") and west.endswith("1,000,000") and south.endswith("250,000")
    assert len(west) <= 60
    assert len(bar_of(east)) == pytest.approx(len(bar_of(west)) / 2, abs=1)
    assert len(bar_of(south)) == pytest.approx(len(bar_of(west)) / 4, abs=1)


def test_bars_follow_the_terminal_width() -> None:
    points = (("West", 10.0), ("East", 5.0))
    narrow = drawn(bar_chart(chart(*points), width=40, styled=False), width=40).splitlines()
    wide = drawn(bar_chart(chart(*points), width=120, styled=False), width=120).splitlines()

    assert len(bar_of(wide[1])) - len(bar_of(narrow[1])) == 80


def test_tiny_values_stay_visible_empty_and_negative_values_keep_their_meaning() -> None:
    lines = drawn(bar_chart(chart(("a", 1e6), ("b", 0.001), ("c", None), ("d", -5e5)), width=60, styled=False))
    a, b, c, d = lines.splitlines()[1:]

    assert bar_of(b) and b.endswith("0")
    assert bar_of(c) == "" and c.endswith("–")
    assert d.endswith("-500,000") and len(bar_of(d)) == pytest.approx(len(bar_of(a)) / 2, abs=1)


def test_a_negative_bar_is_red_on_a_terminal() -> None:
    styled = drawn(bar_chart(chart(("a", 10.0), ("d", -5.0)), width=40, styled=True), styled=True)

    [negative] = [line for line in styled.splitlines() if line.startswith("d ")]
    assert re.search(r"\x1b\[31[;m]", negative)


MONTHS = [("2026-01", 120.0), ("2026-02", 80.0), ("2026-03", 200.0), ("2026-04", None), ("2026-05", 150.0)]


def test_months_and_dates_are_a_time_series_regions_are_not() -> None:
    assert is_time_series(chart(*MONTHS, x="whatever"))
    assert is_time_series(chart(("Jan", 1.0), ("Feb", 2.0), x="m"))
    assert is_time_series(chart(("a", 1.0), ("b", 2.0), x="order_month"))
    assert not is_time_series(chart(("West", 1.0), ("East", 2.0)))


def test_a_time_series_is_a_labelled_line_chart_with_its_range_and_first_and_last_labels() -> None:
    lines = drawn(chart_renderable(chart(*MONTHS, title="orders by month", x="month"), width=60, styled=False))
    rows = lines.splitlines()

    assert rows[0] == "orders by month  (line chart)"
    plot = rows[1:9]
    assert plot[0].lstrip().startswith("200 ┤") and plot[-1].lstrip().startswith("80 ┤")
    assert all("┤" in row for row in plot)
    assert rows[-1].split() == ["2026-01", "2026-05"]
    # The highest point (March) is in the top row, the lowest (February) in the bottom row, left of it.
    top, bottom = plot[0].split("┤")[1], plot[-1].split("┤")[1]
    assert top.strip() and bottom.strip()
    assert len(bottom) - len(bottom.lstrip()) < len(top) - len(top.lstrip())
    assert all(ch == " " or 0x2800 <= ord(ch) <= 0x28FF for row in plot for ch in row.split("┤")[1])


def test_a_flat_series_is_drawn_in_the_middle() -> None:
    text = drawn(line_chart(chart(("2026-01", 5.0), ("2026-02", 5.0), x="month"), width=40, styled=False))
    plot = text.splitlines()[1:9]

    assert [bool(row.split("┤")[1].strip()) for row in plot] == [False] * 4 + [True] + [False] * 3


def test_numeric_columns_of_a_markdown_table_are_right_aligned_and_the_rest_untouched() -> None:
    text = (
        "Hi **there**\n\n| Region | Total |\n|---|:---|\n| West | 1,700.5 |\n| East | 12 |\n\n"
        "| a | n |\n|---|---|\n| x | 5 |"
    )

    assert right_align_numbers(text).splitlines() == [
        "Hi **there**",
        "",
        "| Region | Total |",
        "|---|:---|",  # the model chose an alignment: kept
        "| West | 1,700.5 |",
        "| East | 12 |",
        "",
        "| a | n |",
        "|---|---:|",
        "| x | 5 |",
    ]


def test_markdown_is_rendered_code_fences_included() -> None:
    text = drawn(answer_markdown("# Revenue\n\nWest had **1,234**.\n\n```sql\nSELECT 1\n```\n"), styled=True)
    plain = _SGR.sub("", text)

    assert "SELECT 1" in plain and "```" not in plain and "**" not in plain and "# Revenue" not in plain
