"""The console's renderers as plain functions: numbers, tables, bar charts and streamed markdown."""

from __future__ import annotations

import re

import pytest

from omni_bridge.cli.console.render import CLEAR_LINE, MarkdownStream, Style, bar_chart, format_number, table
from omni_bridge.tools import ChartPoint, ChartSeries, DataChart

PLAIN = Style(False)
ANSI = Style(True)
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def chart(*points: tuple[str, float | None], title: str | None = "revenue by region") -> DataChart:
    return DataChart(
        title=title,
        x_label="region",
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


def test_the_largest_value_fills_the_width_left_by_labels_and_numbers() -> None:
    lines = bar_chart(chart(("West", 1_000_000.0), ("East", 500_000.0), ("South", 250_000.0)), width=60, style=PLAIN)

    assert lines[0] == "revenue by region"
    west, east, south = lines[1:]
    assert all(len(line) == 60 for line in (west, east, south))
    assert west.endswith("1,000,000") and east.endswith("500,000") and south.endswith("250,000")
    assert len(bar_of(west)) == 60 - len("  South  ") - len("  1,000,000")
    assert len(bar_of(east)) == len(bar_of(west)) // 2
    assert len(bar_of(south)) == len(bar_of(west)) // 4


def test_bars_follow_the_terminal_width() -> None:
    points = (("West", 10.0), ("East", 5.0))
    narrow = bar_chart(chart(*points), width=40, style=PLAIN)
    wide = bar_chart(chart(*points), width=120, style=PLAIN)

    assert len(bar_of(wide[1])) - len(bar_of(narrow[1])) == 80
    assert max(len(line) for line in wide) == 120


def test_bar_ends_are_drawn_to_an_eighth_and_tiny_values_stay_visible() -> None:
    # 27 columns: 2 + label 1 + 2 + 16 bar cells + 2 + value 4, so one unit of value is one cell.
    lines = bar_chart(chart(("a", 16.0), ("b", 2.5), ("c", 0.001), title=None), width=27, style=PLAIN)

    assert [bar_of(line) for line in lines] == ["█" * 16, "██▌", "▏"]


def test_empty_and_negative_values_keep_their_meaning() -> None:
    lines = bar_chart(chart(("gain", 100.0), ("loss", -50.0), ("unknown", None)), width=50, style=PLAIN)

    gain, loss, unknown = lines[1:]
    assert loss.endswith("-50") and len(bar_of(loss)) == len(bar_of(gain)) // 2
    assert unknown.endswith("–") and bar_of(unknown) == ""


def test_long_labels_are_cut_and_many_points_are_counted_not_drawn() -> None:
    points = [(f"a very long product name number {n}", float(n + 1)) for n in range(30)]
    lines = bar_chart(chart(*points), width=80, style=PLAIN, max_points=5)

    assert len(lines) == 1 + 5 + 1
    assert "…" in lines[1] and "a very long product name number 0" not in lines[1]
    assert lines[-1].strip() == "… 25 more points"


def test_styling_colours_the_bars_without_changing_the_text() -> None:
    styled = bar_chart(chart(("West", 3.0), ("East", 1.0)), width=50, style=ANSI)
    plain = bar_chart(chart(("West", 3.0), ("East", 1.0)), width=50, style=PLAIN)

    assert styled != plain
    assert [_SGR.sub("", line) for line in styled] == plain


def test_a_table_aligns_numbers_right_with_separators_and_leaves_years_and_formatted_cells_alone() -> None:
    lines = table(
        ["region", "revenue", "year", "margin"],
        [["West", "1234567.891", "2024", "12%"], ["East", "500", "2025", "$3"]],
        style=PLAIN,
    )

    assert lines == [
        "region       revenue  year  margin",
        "──────  ────────────  ────  ──────",
        "West    1,234,567.89  2024     12%",
        "East             500  2025      $3",
    ]


def test_a_long_table_says_how_many_rows_are_not_shown() -> None:
    rows = [[f"r{n}", str(n)] for n in range(20)]
    lines = table(["name", "n"], rows, style=PLAIN, limit=3, total=1500)

    assert len(lines) == 2 + 3 + 1
    assert lines[-1] == "… 1,497 more rows"


def feed_all(stream: MarkdownStream, chunks: list[str]) -> str:
    return "".join(stream.feed(chunk) for chunk in chunks) + stream.finish()


MARKDOWN = (
    "# Revenue\nWest had **1,234** in `orders`.\n- one *item*\n```sql\nSELECT 1\n```\n"
    "| a | n |\n|---|---|\n| x | 5 |\nDone **now**"
)


def test_streamed_markdown_renders_the_same_however_the_text_is_cut() -> None:
    whole = feed_all(MarkdownStream(ANSI), [MARKDOWN])
    by_char = feed_all(MarkdownStream(ANSI), list(MARKDOWN))
    by_three = feed_all(MarkdownStream(ANSI), [MARKDOWN[i : i + 3] for i in range(0, len(MARKDOWN), 3)])

    assert whole == by_char == by_three
    assert (
        _SGR.sub("", whole) == "Revenue\nWest had 1,234 in orders.\n• one *item*\nSELECT 1\na  n\n─  ─\nx  5\nDone now"
    )
    assert "\x1b[1m1,234\x1b[22m" in whole and "\x1b[36morders\x1b[39m" in whole


def test_streamed_markdown_writes_words_as_they_come_and_holds_only_an_undecided_marker() -> None:
    stream = MarkdownStream(ANSI)

    assert stream.feed("West had ") == "West had "
    assert stream.feed("*") == ""  # bold, or a lone asterisk: the next chunk tells
    assert stream.feed("*big**") == "\x1b[1mbig\x1b[22m"
    assert stream.feed(" news\n#") == " news\n"
    assert stream.feed("# Next") == "\x1b[1;4mNext"
    assert stream.finish() == "\x1b[0m"


def test_without_styling_markdown_passes_through_untouched() -> None:
    stream = MarkdownStream(PLAIN)

    assert feed_all(stream, list(MARKDOWN)) == MARKDOWN
    assert CLEAR_LINE not in MARKDOWN


def test_a_streamed_markdown_table_is_held_until_it_ends_then_drawn_aligned() -> None:
    text = "Revenue:\n| Region | Revenue |\n|---|---:|\n| West | 1,700,890.55 |\n| **East** | 9.5 |\nThat is all."
    stream = MarkdownStream(ANSI)
    shown = [stream.feed(chunk) for chunk in text.splitlines(keepends=True)]

    assert shown[1:4] == ["", "", ""]  # the rows wait for the end of the table
    assert _SGR.sub("", shown[5] + stream.finish()).splitlines() == [
        "Region       Revenue",
        "──────  ────────────",
        "West    1,700,890.55",
        "East            9.50",
        "That is all.",
    ]
