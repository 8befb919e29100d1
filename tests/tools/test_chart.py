"""Charts derived from result tables, and the number reading they rest on."""

from __future__ import annotations

import pytest

from omni_bridge.tools._chart import MAX_CHART_POINTS, derive_chart, parse_number


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("42", 42.0),
        (" 42 ", 42.0),
        ("1,234.5", 1234.5),
        ("1,234,567", 1234567.0),
        ("$12", 12.0),
        ("-$1,234.56", -1234.56),
        ("$-5", -5.0),
        ("€3.20", 3.2),
        ("−7", -7.0),  # a Unicode minus, as spreadsheets write it
        ("(1,234)", -1234.0),  # accounting negative
        ("12%", 12.0),
        ("1.2M", 1_200_000.0),
        ("3k", 3000.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("0.00", 0.0),
        ("", None),
        ("  ", None),
        ("null", None),
        ("N/A", None),
        ("-", None),
    ],
)
def test_parse_number_reads_formatted_numbers(cell: str, value: float | None) -> None:
    assert parse_number(cell) == value


@pytest.mark.parametrize(
    "cell", ["West", "2024-01", "2024-01-15", "1,2", "12,34", "12abc", "nan", "inf", "-$-5", "(-5)", "$"]
)
def test_parse_number_refuses_text(cell: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_number(cell)


def test_one_label_and_numeric_columns_make_one_series_each() -> None:
    chart = derive_chart(
        ["Region", "Total Revenue", "Order Count"],
        [["West", "$1,700,890.55", "1,204"], ["East", "1533743.23", ""], ["South", "(12)", "7"]],
    )

    assert chart is not None
    assert chart.x_label == "Region" and chart.title == "Total Revenue, Order Count by Region"
    assert [s.name for s in chart.series] == ["Total Revenue", "Order Count"]
    assert [(p.x, p.y) for p in chart.series[0].points] == [
        ("West", 1700890.55),
        ("East", 1533743.23),
        ("South", -12.0),
    ]
    assert [p.y for p in chart.series[1].points] == [1204.0, None, 7.0]
    assert chart.model_dump(by_alias=True)["xLabel"] == "Region"


def test_month_labels_count_as_labels() -> None:
    chart = derive_chart(["Order Month", "Orders"], [["2024-01", "204"], ["2024-02", "166"]])
    assert chart is not None and [p.x for p in chart.series[0].points] == ["2024-01", "2024-02"]


def test_a_year_column_is_a_label_when_its_header_says_so() -> None:
    chart = derive_chart(["Order Year", "Revenue"], [["2024", "10.5"], ["2025", "12"]])
    assert chart is not None and chart.x_label == "Order Year" and chart.series[0].name == "Revenue"
    assert derive_chart(["Count", "Revenue"], [["2024", "10.5"], ["2025", "12"]]) is None  # no label without the hint


def test_a_column_of_nulls_only_is_left_out() -> None:
    chart = derive_chart(["Region", "Revenue", "Returns"], [["West", "1", ""], ["East", "2", ""]])
    assert chart is not None and [s.name for s in chart.series] == ["Revenue"]


@pytest.mark.parametrize(
    ("columns", "rows"),
    [
        pytest.param(
            ["Category", "Region", "Revenue"], [["Shoes", "West", "1"], ["Jeans", "East", "2"]], id="two-labels"
        ),
        pytest.param(["Region", "Manager"], [["West", "Ann"], ["East", "Bo"]], id="no-numeric-column"),
        pytest.param(["Total Revenue"], [["5526957.46"]], id="single-number-no-label"),
        pytest.param(["Revenue", "Orders"], [["1", "2"], ["3", "4"]], id="numbers-only"),
        pytest.param(["Region", "Revenue"], [], id="no-rows"),
        pytest.param(["Region", "Revenue"], [["West", ""], ["East", "-"]], id="numeric-column-all-null"),
        pytest.param(["Region", "Revenue"], [["West"], ["East", "2"]], id="ragged-rows"),
    ],
)
def test_no_chart_for_tables_that_are_not_one_label_and_numbers(columns: list[str], rows: list[list[str]]) -> None:
    assert derive_chart(columns, rows) is None


def test_no_chart_past_the_point_limit() -> None:
    rows = [[f"item {i}", str(i)] for i in range(MAX_CHART_POINTS + 1)]
    assert derive_chart(["Item", "Value"], rows[:MAX_CHART_POINTS]) is not None
    assert derive_chart(["Item", "Value"], rows) is None
