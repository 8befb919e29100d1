"""The one result table of the console, shared by `chat`, `ask` and `demo`: a Rich table, numbers right-aligned.

A numeric column (every cell a number or empty) is right-aligned, and its plain numbers get thousands
separators; cells already formatted (`$1,234`, `12%`) and number-like names (years, ids, zip codes) stay as
they are. On a terminal the table has rounded borders and a bold header; in a pipe it is drawn with ASCII
rules only, so it reads the same in a log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from omni_bridge.cli.console.render import format_number, truncate
from omni_bridge.tools import parse_number

__all__ = ["numeric_column", "result_table"]

_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_NAME_LIKE = re.compile(r"\b(year|yr|id|zip|code|phone)s?\b", re.IGNORECASE)
"""Numeric-looking columns whose values are names, not quantities: no thousands separators for them."""


def numeric_column(cells: Sequence[str]) -> bool:
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
    text = cell.strip()
    if reformat and _PLAIN_NUMBER.fullmatch(text):
        return format_number(float(text))
    return text


def result_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    styled: bool,
    limit: int = 15,
    total: int | None = None,
    max_cell: int = 40,
    title: str | None = None,
) -> RenderableType | None:
    """A result as a table: header, rows (numbers right-aligned, with separators), and how many rows are left out.

    Args:
        columns: the header.
        rows: the rows (CSV cells, or values: floats are shown with two decimals).
        styled: a terminal (rounded borders, bold header) or a pipe (ASCII rules).
        limit: rows shown at most; a line under the table says how many more there are.
        total: rows the result has in all, when more than `rows` (e.g. Omni truncated it).
        max_cell: cells longer than this are cut with `…`.
        title: a line above the table.

    Returns:
        The table; `None` when there are no columns.
    """
    if not columns:
        return None
    shown = [[_cell_text(cell) for cell in row] + [""] * (len(columns) - len(row)) for row in rows[:limit]]
    numeric = [bool(shown) and numeric_column([row[i] for row in shown]) for i in range(len(columns))]
    more = max(len(rows), total or 0) - len(shown)
    table = Table(
        box=box.ROUNDED if styled else box.ASCII2,
        header_style="bold" if styled else "",
        title=title,
        title_justify="left",
        show_edge=True,
        pad_edge=True,
    )
    for index, name in enumerate(columns):
        table.add_column(truncate(str(name), max_cell), justify="right" if numeric[index] else "left", no_wrap=True)
    for row in shown:
        table.add_row(
            *(
                Text(
                    truncate(
                        _shown_cell(cell, reformat=numeric[i] and not _NAME_LIKE.search(str(columns[i]))), max_cell
                    )
                )
                for i, cell in enumerate(row[: len(columns)])
            )
        )
    if more <= 0:
        return table
    return Group(table, Text(f"… {more:,} more row{'s' if more != 1 else ''}", style="dim"))


def _cell_text(cell: object) -> str:
    if isinstance(cell, float):
        return f"{cell:.2f}"
    return "" if cell is None else str(cell)
