"""The web page's own charts: a line for a time series, bars for categories, both inline SVG.

The sandbox answers "orders by month this year" with a month per row (`2026-01` ...) and "revenue by region"
with a region per row; the page is driven in headless Chromium as in `test_web_page`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.conftest import Served
from tests.server.test_web_page import chromium_page, one_done, page_service, requires_chromium

CHARTS = """[...document.querySelectorAll('.message.assistant')].map((n) => {
  const svg = n.querySelector('figure.chart svg');
  return svg && {
    label: svg.getAttribute('aria-label'),
    lines: [...svg.querySelectorAll('polyline.line')].map((l) => l.getAttribute('points').trim().split(/\\s+/).length),
    points: [...svg.querySelectorAll('circle.point')].map((c) => [c.dataset.x, Number(c.dataset.value)]),
    pointsX: [...svg.querySelectorAll('circle.point')].map((c) => Number(c.getAttribute('cx'))),
    xLabels: [...svg.querySelectorAll('text.x-label')].map((t) => t.textContent),
    bars: [...svg.querySelectorAll('rect.bar')].map((b) => b.dataset.x),
    axisTitles: [...svg.querySelectorAll('text.axis-title')].map((t) => t.textContent),
    rotated: svg.querySelectorAll('text[transform]').length,
  };
})"""
STATE = "[...document.querySelectorAll('.message.assistant')].map((n) => ({ state: n.dataset.state }))"


@requires_chromium
async def test_a_time_series_draws_a_line_and_categories_draw_bars(served: Served, tmp_path: Path) -> None:
    async with page_service(served, tmp_path / "data") as (url, _), chromium_page(tmp_path / "profile") as page:
        await page.open(url + "/")
        await page.pick_user("alice")
        await page.ask("orders by month this year")
        await page.wait_until(STATE, one_done(1))
        [months] = await page.evaluate(CHARTS)
        assert months is not None and months["label"].startswith("Line chart")
        assert months["bars"] == [] and months["rotated"] == 0
        [drawn] = months["lines"]
        xs = [x for x, _ in months["points"]]
        assert drawn == len(xs) >= 6 and xs == sorted(xs) and xs[0] == "2026-01"  # one vertex per month, in order
        assert all(value > 0 for _, value in months["points"])
        assert months["pointsX"] == sorted(months["pointsX"]) and len(set(months["pointsX"])) == len(xs)
        assert months["xLabels"][0] == xs[0] and months["xLabels"][-1] == xs[-1]  # the axis says which months
        assert "Order Month" in months["axisTitles"]
        await page.evaluate("document.querySelector('figure.chart').scrollIntoView()")
        await page.screenshot(tmp_path / "line.png")

        await page.ask("revenue by region")
        await page.wait_until(STATE, one_done(2))
        regions = (await page.evaluate(CHARTS))[1]
        assert regions is not None and regions["label"].startswith("Bar chart")
        assert regions["bars"] == ["West"] and regions["lines"] == [] and regions["points"] == []
        assert page.devtools.problems == []


# The x labels of each line chart as drawn: their boxes on the screen, left to right.
LABEL_BOXES = """[...document.querySelectorAll('figure.chart svg text.x-label')].map((t) => {
  const box = t.getBoundingClientRect();
  return [t.textContent, box.left, box.right];
})"""


@requires_chromium
async def test_a_long_daily_series_is_one_line_with_labels_that_do_not_overlap(served: Served, tmp_path: Path) -> None:
    async with page_service(served, tmp_path / "data") as (url, _), chromium_page(tmp_path / "profile") as page:
        await page.open(url + "/")
        await page.pick_user("alice")
        await page.ask("orders by date in the past 60 days")
        await page.wait_until(STATE, one_done(1))
        [days] = await page.evaluate(CHARTS)
        assert days is not None and days["label"].startswith("Line chart") and days["bars"] == []
        assert days["lines"] == [len(days["points"])] and len(days["points"]) >= 30  # every day is a point
        boxes = await page.evaluate(LABEL_BOXES)
        assert 2 <= len(boxes) < len(days["points"])  # thinned to what fits
        assert boxes[0][0] == days["points"][0][0] and boxes[-1][0] == days["points"][-1][0]
        assert all(left[2] < right[1] for left, right in itertools.pairwise(boxes))
        await page.evaluate("document.querySelector('figure.chart').scrollIntoView()")
        await page.screenshot(tmp_path / "days.png")
        assert page.devtools.problems == []
