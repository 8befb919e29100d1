"""An answer's Markdown as Rich draws it, with the numbers of its tables right-aligned.

Rich renders Markdown (headings, emphasis, lists, tables, code fences with syntax colour) but aligns a table's
columns as the rule line says, and models write `|---|`: left. Before rendering, the rule cell of every
column whose cells are all numbers becomes `---:`, so figures line up on their last digit, as in the
console's own result tables. Text outside tables is untouched.
"""

from __future__ import annotations

import re

from rich.markdown import Markdown

from omni_bridge.cli.console.tables import numeric_column

__all__ = ["answer_markdown", "right_align_numbers"]

_RULE_CELL = re.compile(r"\s*:?-{3,}:?\s*")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().removeprefix("|").removesuffix("|").split("|")]


def right_align_numbers(text: str) -> str:
    """`text` with the rule line of each Markdown table marking its numeric columns right-aligned."""
    lines = text.split("\n")
    for index in range(1, len(lines)):
        rule, header = lines[index], lines[index - 1]
        if not (rule.strip().startswith("|") and header.strip().startswith("|")):
            continue
        rule_cells = _cells(rule)
        if not all(_RULE_CELL.fullmatch(cell) for cell in rule_cells):
            continue
        body: list[list[str]] = []
        for line in lines[index + 1 :]:
            if not line.strip().startswith("|"):
                break
            body.append(_cells(line))
        aligned = []
        for column, cell in enumerate(rule_cells):
            values = [row[column].replace("**", "").replace("`", "") for row in body if column < len(row)]
            plain = cell.strip().strip(":")
            aligned.append(f"{plain}:" if ":" not in cell and numeric_column(values) else cell.strip())
        lines[index] = "|" + "|".join(aligned) + "|"
    return "\n".join(lines)


def answer_markdown(text: str) -> Markdown:
    """The answer's text as a Rich renderable."""
    return Markdown(right_align_numbers(text))
