"""Shared text pieces of the console: the Rich console it writes through, numbers, and the provenance line.

Everything the console draws goes through one `rich.console.Console` made by `make_console`: on a terminal it
styles (colour, bold, Markdown, live redraws); into a pipe it is a plain, fixed-width writer that emits no
escape code, so a script or a log reads the same text on every run. Tables and charts live in `tables` and
`charts`; this module holds what they and the view share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.text import Text

from omni_bridge.tools import QueryProvenance

__all__ = ["PIPE_WIDTH", "format_number", "make_console", "provenance_lines", "truncate"]

PIPE_WIDTH = 100
"""Columns a pipe's tables and charts are laid out for: fixed, so the output does not depend on `COLUMNS`."""


class _Console(Console):
    """Rich's console, except that a closed pipe raises `BrokenPipeError` (Rich exits with 1 by itself): the
    command's `main` ends quietly with 141, as a Unix tool killed by SIGPIPE, the same for every command."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def make_console(out: TextIO, *, terminal: bool, width: int | None = None) -> Console:
    """The console that writes to `out`: styled and live on a terminal, plain text otherwise.

    `terminal` is the caller's decision (a tty, and `TERM` is not `dumb`); `NO_COLOR` keeps bold and layout but
    drops colour, as Rich reads it. Markup and highlighting are off: data and model text are printed as given.
    """
    if terminal:
        return _Console(file=out, force_terminal=True, highlight=False, markup=False, emoji=False, width=width)
    return _Console(
        file=out,
        force_terminal=False,
        no_color=True,
        color_system=None,
        highlight=False,
        markup=False,
        emoji=False,
        width=width or PIPE_WIDTH,
        legacy_windows=False,
    )


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


def provenance_lines(queries: Sequence[QueryProvenance], *, shown_link: str | None = None) -> list[Text]:
    """How the answer was computed, one line per query behind it (usually one), e.g.
    `How this was computed: topic order_items · fields … · filters orders.created_at 2026-10-01 to 2026-10-31 · …`.

    A query's link is left out when it is `shown_link`, the answer's own "Open in Omni" line: once is enough.
    A partial table's line is red: it must not read like the rest of the footer (dim).
    """
    return [
        Text(
            f"How this was computed: {query.line(link=query.omni_url != shown_link)}",
            style="red" if query.cut_reason == "preview" else "dim",
        )
        for query in queries
    ]
