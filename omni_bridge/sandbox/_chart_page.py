"""`getJobChartPage`: the interactive chart page of a completed AI job, built locally with no outside assets.

Omni documents the tool (a `jobId` of a completed `askOmni` job and `format: "html"`; an interactive page with
hover tooltips, a chart-type picker and a table view; the answer in `structuredContent` as the request's HTTP
`status` with the page in `body`, or with `error`; pages over 200,000 characters refused) but not its markup,
so the page here is the sandbox's own: one HTML document holding a bar chart and a line chart as inline SVG,
drawn here from the job's query result, the table of every row, a little CSS and one fixed script. The script
only switches between the views and shows a tooltip from `data-tip` attributes with `textContent`; it is
pinned by hash in the page's own content security policy, which also allows no fetch, frame or font at all.

Every value from the data (labels, numbers, column names, the question) is untrusted: it reaches the page only
through `html.escape` (text and quoted attributes alike), never inside the script.

The page is built from the job's result as clients see it (`actions[].result.csvResult`, its truncation flag
and the label rows of a truncated preview), so it stays right whatever produced that result.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

import mcp_types as types

__all__ = [
    "CHART_SCRIPT_SHA256",
    "MAX_PAGE_CHARS",
    "ChartPageError",
    "build_chart_page",
    "chart_page_error",
    "chart_page_result",
]

MAX_PAGE_CHARS = 200_000
"""Omni refuses chart pages over 200,000 characters (omni-api.md §6)."""
MAX_CHART_POINTS = 500
"""Labels drawn at most; the table still has every row."""
_LABEL_ROW = re.compile(r"^(FIRST|LAST|SAMPLED\b.*)$", re.IGNORECASE)
"""The one-cell label rows Omni puts between the rows of a truncated CSV preview."""
_COLORS = ("#2f5fd0", "#e0803a", "#2e9d74", "#c2497a", "#7b61c9", "#8a93a3")
_NUM = ' class="num"'
_WIDTH, _HEIGHT = 720, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 16, 56

_SCRIPT = """"use strict";
(() => {
  const views = document.querySelectorAll("[data-view]");
  const panels = document.querySelectorAll("[data-panel]");
  const tip = document.getElementById("tip");
  function show(view) {
    for (const button of views) button.setAttribute("aria-pressed", String(button.dataset.view === view));
    for (const panel of panels) panel.hidden = panel.dataset.panel !== view;
    document.body.dataset.view = view;
  }
  for (const button of views) button.addEventListener("click", () => show(button.dataset.view));
  document.addEventListener("pointerover", (event) => {
    const target = event.target instanceof Element ? event.target.closest("[data-tip]") : null;
    if (!target) { tip.hidden = true; return; }
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
  });
  document.addEventListener("pointermove", (event) => {
    tip.style.left = `${event.clientX + 12}px`;
    tip.style.top = `${event.clientY + 12}px`;
  });
  show(document.body.dataset.initial || "bar");
})();
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
CHART_SCRIPT_SHA256 = _SCRIPT_HASH
"""The hash of the page's only script, as a CSP source (`'sha256-…'`) would name it."""

_STYLE = """
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 12px 16px; color: #1f2430; background: #fff; }
  h1 { font-size: 16px; margin: 0 0 4px; }
  .meta { color: #5b6475; margin: 0 0 8px; }
  .picker { display: flex; gap: 4px; margin: 0 0 8px; }
  .picker button { font: inherit; padding: 3px 10px; border: 1px solid #c8cdd8; border-radius: 4px; }
  .picker button { background: #f5f6f9; }
  .picker button[aria-pressed="true"] { background: #2f5fd0; color: #fff; border-color: #2f5fd0; }
  svg { display: block; width: 100%; max-width: 720px; height: auto; }
  svg .axis { stroke: #8a93a3; stroke-width: 1; }
  svg .grid { stroke: #e3e6ec; stroke-width: 1; }
  svg text { font-size: 11px; fill: #5b6475; }
  svg .bar:hover, svg .point:hover { opacity: .75; }
  table { border-collapse: collapse; margin: 4px 0; }
  th, td { border: 1px solid #e3e6ec; padding: 2px 8px; text-align: left; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.label-row td { background: #fff6e0; font-style: italic; }
  .legend span { margin-right: 12px; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
  .note { color: #8a5a00; }
  #tip { position: fixed; pointer-events: none; background: #1f2430; color: #fff; padding: 3px 7px; }
"""
_POLICY = (
    f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


class ChartPageError(Exception):
    """Why there is no page: `status` is the HTTP status `structuredContent.status` carries."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Table:
    header: list[str]
    rows: list[list[str]]
    """Data rows; a label row of a truncated preview is a one-cell row."""
    truncated: bool
    total_rows: int | None

    @property
    def data_rows(self) -> list[list[str]]:
        return [row for row in self.rows if not _is_label_row(row, len(self.header))]


def _is_label_row(row: list[str], width: int) -> bool:
    return width > 1 and len([c for c in row if c.strip()]) == 1 and bool(_LABEL_ROW.match(row[0].strip()))


def _number(cell: str) -> float | None:
    text = cell.strip().replace(",", "").lstrip("$")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) and abs(value) < 1e15 else f"{value:,.2f}"


def _query_table(result: dict[str, Any]) -> _Table:
    """The last query of the job's result that has rows (Omni's `actions[].result`), as a table."""
    for action in reversed(result.get("actions") or []):
        found = action.get("result") if isinstance(action, dict) else None
        if isinstance(found, dict) and isinstance(found.get("csvResult"), str) and found["csvResult"].strip():
            rows = [row for row in csv.reader(io.StringIO(found["csvResult"])) if row]
            total = found.get("totalRowCount")
            return _Table(
                header=rows[0],
                rows=rows[1:],
                truncated=bool(found.get("csvResultWasTruncated")),
                total_rows=total if isinstance(total, int) else None,
            )
    raise ChartPageError(404, "The job's answer has no query result to chart")


def _series(table: _Table) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Labels (the first column) and one series per numeric column after it."""
    rows = table.data_rows[:MAX_CHART_POINTS]
    if len(table.header) == 1:
        values = [_number(row[0]) for row in rows]
        if any(v is not None for v in values):
            return [str(n) for n in range(1, len(rows) + 1)], [(table.header[0], values)]
        return [], []
    labels = [row[0] for row in rows]
    series = []
    for index, name in enumerate(table.header[1:], start=1):
        cells = [row[index] if index < len(row) else "" for row in rows]
        values = [_number(cell) for cell in cells]
        if all(v is not None or not c.strip() for v, c in zip(values, cells, strict=True)) and any(
            v is not None for v in values
        ):
            series.append((name, values))
    return labels, series


def _scale(series: list[tuple[str, list[float | None]]]) -> tuple[float, float, list[float]]:
    values = [v for _, vs in series for v in vs if v is not None]
    low, high = min(0.0, *values), max(0.0, *values)
    if low == high:
        high = low + 1
    step = 10 ** math.floor(math.log10((high - low) / 4))
    for multiple in (1, 2, 2.5, 5, 10):
        if (high - low) / (step * multiple) <= 5:
            step *= multiple
            break
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    ticks = [low + step * n for n in range(round((high - low) / step) + 1)]
    return low, high, ticks


def _axes(labels: list[str], low: float, high: float, ticks: list[float], x_of: Callable[[int], float]) -> list[str]:
    plot_h = _HEIGHT - _TOP - _BOTTOM
    out = []
    for tick in ticks:
        y = _TOP + plot_h - (tick - low) / (high - low) * plot_h
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(tick))}</text>')
    zero = _TOP + plot_h - (0 - low) / (high - low) * plot_h
    out.append(f'<line class="axis" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}"/>')
    every = max(1, math.ceil(len(labels) / 12))
    for index in range(0, len(labels), every):
        text = labels[index] if len(labels[index]) <= 14 else labels[index][:13] + "…"
        x = x_of(index)
        out.append(
            f'<text x="{x:.1f}" y="{_HEIGHT - _BOTTOM + 16}" text-anchor="middle">{escape(text, quote=True)}</text>'
        )
    return out


def _tip(label: str, name: str, value: float | None) -> str:
    return escape(f"{label} · {name}: {_fmt(value) if value is not None else '—'}", quote=True)


def _bar_svg(labels: list[str], series: list[tuple[str, list[float | None]]]) -> str:
    low, high, ticks = _scale(series)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    band = plot_w / len(labels)
    bar_w = band * 0.8 / len(series)

    def y_of(value: float) -> float:
        return _TOP + plot_h - (value - low) / (high - low) * plot_h

    def x_of(index: int) -> float:
        return _LEFT + band * (index + 0.5)

    out = _axes(labels, low, high, ticks, x_of)
    for s_index, (name, values) in enumerate(series):
        color = _COLORS[s_index % len(_COLORS)]
        for index, value in enumerate(values):
            if value is None:
                continue
            x = _LEFT + band * index + band * 0.1 + bar_w * s_index
            top, bottom = sorted((y_of(value), y_of(0)))
            tip = _tip(labels[index], name, value)
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{max(bar_w, 0.5):.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}" fill="{color}" data-tip="{tip}"><title>{tip}</title></rect>'
            )
    return _svg("bar", out)


def _line_svg(labels: list[str], series: list[tuple[str, list[float | None]]]) -> str:
    low, high, ticks = _scale(series)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(labels) - 1, 1)

    def x_of(index: int) -> float:
        return _LEFT + step * index if len(labels) > 1 else _LEFT + plot_w / 2

    def y_of(value: float) -> float:
        return _TOP + plot_h - (value - low) / (high - low) * plot_h

    out = _axes(labels, low, high, ticks, x_of)
    for s_index, (name, values) in enumerate(series):
        color = _COLORS[s_index % len(_COLORS)]
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values) if v is not None)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        if len(labels) <= 120:
            for index, value in enumerate(values):
                if value is not None:
                    tip = _tip(labels[index], name, value)
                    out.append(
                        f'<circle class="point" cx="{x_of(index):.1f}" cy="{y_of(value):.1f}" r="3.5" '
                        f'fill="{color}" data-tip="{tip}"><title>{tip}</title></circle>'
                    )
    return _svg("line", out)


def _svg(kind: str, body: list[str]) -> str:
    return (
        f'<svg class="chart {kind}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{kind} chart">'
        + "".join(body)
        + "</svg>"
    )


def _table_html(table: _Table) -> str:
    rows_in = table.data_rows
    numeric = {i for i in range(len(table.header)) if all(_number(r[i]) is not None for r in rows_in if i < len(r))}
    head = "".join(f"<th>{escape(name)}</th>" for name in table.header)
    rows = []
    for row in table.rows:
        if _is_label_row(row, len(table.header)):
            rows.append(f'<tr class="label-row"><td colspan="{len(table.header)}">{escape(row[0])}</td></tr>')
        else:
            cells = "".join(f"<td{_NUM if i in numeric else ''}>{escape(c)}</td>" for i, c in enumerate(row))
            rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def build_chart_page(*, job_id: str, prompt: str, result: dict[str, Any]) -> str:
    """The page of a completed job's result (Omni's `/result` body).

    Raises:
        ChartPageError: 404 when the result has no query rows; 413 when the page would pass `MAX_PAGE_CHARS`.
    """
    table = _query_table(result)
    labels, series = _series(table)
    shown = len(table.data_rows)
    notes = []
    if table.truncated or shown != len(table.rows):
        of = f" of {table.total_rows:,}" if table.total_rows is not None else ""
        notes.append(f"Partial result: this preview has {shown:,} rows{of}.")
    if shown > MAX_CHART_POINTS and series:
        notes.append(f"The charts show the first {MAX_CHART_POINTS:,} rows; the table has them all.")
    if series:
        legend = "".join(
            f'<span><i style="background:{_COLORS[n % len(_COLORS)]}"></i>{escape(name)}</span>'
            for n, (name, _) in enumerate(series)
        )
        charts = (
            f'<figure data-panel="bar">{_bar_svg(labels, series)}</figure>'
            f'<figure data-panel="line" hidden>{_line_svg(labels, series)}</figure>'
            f'<p class="legend">{legend}</p>'
        )
        initial = "bar"
    else:
        empty = "The query returned no rows." if not shown else "No numeric column to chart."
        charts = "".join(f'<p data-panel="{kind}">{empty}</p>' for kind in ("bar", "line"))
        initial = "table"
    topic = result.get("topic")
    meta = f"{shown:,} rows" + (f" · topic {topic}" if isinstance(topic, str) and topic else "")
    page = (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        f"<title>{escape(prompt)}</title><style>{_STYLE}</style></head>"
        f'<body data-initial="{initial}" data-job-id="{escape(job_id, quote=True)}">'
        f"<h1>{escape(prompt)}</h1>"
        f'<p class="meta">{escape(meta)}</p>'
        + "".join(f'<p class="note">{escape(note)}</p>' for note in notes)
        + '<div class="picker" role="group" aria-label="Chart type">'
        '<button type="button" data-view="bar" aria-pressed="true">Bar</button>'
        '<button type="button" data-view="line" aria-pressed="false">Line</button>'
        '<button type="button" data-view="table" aria-pressed="false">Table</button></div>'
        + charts
        + f'<div data-panel="table">{_table_html(table)}</div>'
        '<div id="tip" role="tooltip" hidden></div>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
    if len(page) > MAX_PAGE_CHARS:
        raise ChartPageError(
            413, f"The chart page is {len(page):,} characters; pages over {MAX_PAGE_CHARS:,} characters are refused"
        )
    return page


def chart_page_result(body: str) -> types.CallToolResult:
    """The tool's answer with a page: `structuredContent {status: 200, body}`, the same JSON as text."""
    structured = {"status": 200, "body": body}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(structured))], structured_content=structured
    )


def chart_page_error(status: int, message: str) -> types.CallToolResult:
    """The tool's answer without a page: `structuredContent {status, error}` (Omni's documented shape), `isError`."""
    structured = {"status": status, "error": message}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(structured))],
        structured_content=structured,
        is_error=True,
    )
