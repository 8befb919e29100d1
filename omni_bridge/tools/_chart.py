"""The chart payload: `DataChart{series[{name, points[{x, y}]}]}`, the `chart` content part of an answer.

A chart is derived from a result table that has one label column and numeric columns: each numeric column
becomes a series, each row a point whose `x` is the label. Anything else (two label columns, no numeric
column, too many rows to read as a chart) gets no chart: a wrong chart is worse than none.

Omni's cells may arrive formatted (`"1,234.5"`, `"$12"`, `"-€3.20"`, `"12%"`, `"(45)"`, `"1.2M"`) or empty for
null, so `parse_number` reads those forms and refuses anything ambiguous (`"1,2"`, `"nan"`, `"12abc"`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = ["MAX_CHART_POINTS", "ChartPoint", "ChartSeries", "DataChart", "derive_chart", "parse_number"]

MAX_CHART_POINTS = 500
"""Tables with more rows than this get no chart: a chart of thousands of points says nothing."""

_NULLS = frozenset({"", "null", "none", "n/a", "-", "—"})
"""Cell texts (lower-cased, stripped) that mean "no value"."""

_NUMBER = re.compile(
    r"""
    (?P<sign>[-+−])?                    # a sign may come before the currency symbol ...
    [$€£¥₹]?
    (?P<sign2>[-+−])?                   # ... or after it
    (?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)? | \d+(?:\.\d*)? | \.\d+)
    (?P<exp>[eE][-+]?\d+)?
    (?P<suffix>[kKmMbBtT%])?
    """,
    re.VERBOSE,
)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12, "%": 1.0}
_YEAR_HEADER = re.compile(r"\byears?\b", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d\d")


class ChartPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    x: str
    """The label of the row (a category, a month, a region)."""
    y: float | None
    """The value; `None` where the cell was empty."""


class ChartSeries(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    """The numeric column this series plots."""
    points: list[ChartPoint] = Field(default_factory=list)


class DataChart(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str | None = None
    x_label: str | None = Field(
        default=None, serialization_alias="xLabel", validation_alias=AliasChoices("xLabel", "x_label")
    )
    series: list[ChartSeries] = Field(default_factory=list)


def parse_number(cell: str) -> float | None:
    """Read a table cell as a number.

    Accepts plain and formatted numbers: thousands separators in groups of three (`"1,234.5"`), a currency
    symbol before the digits (`"$12"`, `"-$1,234.56"`, `"$-5"`), a Unicode minus, accounting negatives
    (`"(1,234)"`), an exponent, a percent sign (kept as shown: `"12%"` is 12) and a K/M/B/T scale suffix
    (`"1.2M"` is 1,200,000).

    Args:
        cell: The cell's text.

    Returns:
        The value, or `None` when the cell is empty or a null marker (`""`, `"null"`, `"N/A"`, `"-"`).

    Raises:
        ValueError: The cell is text, not a number (including `"nan"`, `"inf"` and `"1,2"`).
    """
    text = cell.strip()
    if text.lower() in _NULLS:
        return None
    negative = False
    if text.startswith("(") and text.endswith(")"):
        text, negative = text[1:-1].strip(), True
    match = _NUMBER.fullmatch(text)
    if match is None or (match["sign"] and match["sign2"]):
        raise ValueError(f"not a number: {cell!r}")
    value = float(match["digits"].replace(",", "") + (match["exp"] or ""))
    if match["suffix"]:
        value *= _SCALE[match["suffix"].lower()]
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {cell!r}")
    sign = match["sign"] or match["sign2"]
    if negative and sign:
        raise ValueError(f"not a number: {cell!r}")
    if sign in ("-", "−"):
        negative = not negative
    return -value if negative else value


def derive_chart(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> DataChart | None:
    """A chart for a table with exactly one label column and at least one numeric column.

    A column is numeric when every cell is a number or null (see `parse_number`) and at least one is a
    number; a column of nulls only is left out; any other column is a label. Dates and months (`"2024-01"`)
    are labels; so is a column of plain years (`2024`) whose header says "year", which would otherwise read as
    numbers.

    Args:
        columns: The table's header.
        rows: The table's rows, as the cells' text.

    Returns:
        One series per numeric column (named after it), one point per row (`x` the label, `y` the value), or
        `None`: no rows, more than `MAX_CHART_POINTS` rows, no numeric column, or not exactly one label column
        (none, as for a single total, or two and more, as for revenue by category by region).
    """
    if not rows or len(rows) > MAX_CHART_POINTS or any(len(row) != len(columns) for row in rows):
        return None
    labels: list[int] = []
    numeric: dict[int, list[float | None]] = {}
    for index in range(len(columns)):
        values = _numeric_values(row[index] for row in rows)
        if values is None:
            labels.append(index)
        elif any(v is not None for v in values):
            numeric[index] = values
    if not labels:
        years = [i for i in numeric if _is_year_column(columns[i], [row[i] for row in rows])]
        if len(years) == 1:
            labels.append(years[0])
            del numeric[years[0]]
    if len(labels) != 1 or not numeric:
        return None
    label = labels[0]
    series = [
        ChartSeries(
            name=columns[index],
            points=[ChartPoint(x=row[label], y=y) for row, y in zip(rows, values, strict=True)],
        )
        for index, values in numeric.items()
    ]
    names = ", ".join(columns[index] for index in numeric)
    return DataChart(title=f"{names} by {columns[label]}", x_label=columns[label], series=series)


def _numeric_values(cells: Iterable[str]) -> list[float | None] | None:
    """The column's values, or `None` when a cell is not a number (the column is a label)."""
    values: list[float | None] = []
    for cell in cells:
        try:
            values.append(parse_number(cell))
        except ValueError:
            return None
    return values


def _is_year_column(header: str, cells: list[str]) -> bool:
    return bool(_YEAR_HEADER.search(header)) and all(_YEAR.fullmatch(c.strip()) or not c.strip() for c in cells)
