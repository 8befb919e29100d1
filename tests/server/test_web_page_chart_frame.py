"""Omni's chart page in the web page: a sandboxed `srcdoc` frame that renders and works, and cannot get out.

Headless Chromium drives the page (see `test_web_page`); the frame runs out of process, so it is reached through
`Target.setAutoAttach` and evaluated in its own main world, where the page's scripts run and its policies apply.
A canary server on loopback counts every request that reaches it: whatever the frame tries, it must stay at zero.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx2
from starlette.types import Receive, Scope, Send

from omni_bridge._serving import serve_asgi
from tests.conftest import Served
from tests.server.test_web_page import (
    ANSWERS,
    WAIT_SECONDS,
    Page,
    chromium_page,
    one_done,
    page_service,
    requires_chromium,
)

FRAME = "document.querySelector('.chart-page-box iframe')"
HOSTILE = "<script>fetch('{canary}/script')</script><img src=x onerror=\"fetch('{canary}/img')\">"


class Canary:
    """An HTTP server that answers 200 to anything and remembers the paths it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def frame_session(page: Page) -> str:
    """The DevTools session of the chart page's frame, once it is attached and its page has loaded."""
    await page.call("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": False, "flatten": True})
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            frames = [f for f in page.devtools.frames if f["targetInfo"]["type"] == "iframe"]
            if frames:
                break
            await asyncio.sleep(0.05)
    session: str = frames[0]["sessionId"]
    await frame_wait(page, session, "document.readyState", lambda state: state == "complete")
    return session


async def in_frame(page: Page, session: str, expression: str) -> Any:
    """`expression` evaluated in the frame's main world (promises awaited)."""
    params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
    result = await page.devtools.call("Runtime.evaluate", params, session=session)
    if "exceptionDetails" in result:
        raise AssertionError(f"{expression!r} threw in the frame: {result['exceptionDetails']}")
    return result["result"].get("value")


async def frame_wait(page: Page, session: str, expression: str, condition: Any) -> Any:
    """The value of `expression` in the frame once `condition` holds for it, polled within `WAIT_SECONDS`."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            value = await in_frame(page, session, expression)
            if condition(value):
                return value
            await asyncio.sleep(0.05)


async def hover(page: Page, session: str, selector: str) -> None:
    """A real mouse move onto `selector` inside the frame (page coordinates: the frame's box plus the element's)."""
    frame_box = await page.evaluate(
        f"(() => {{ const f = {FRAME}; f.scrollIntoView({{block: 'start'}}); const b = f.getBoundingClientRect(); "
        "return [b.x, b.y]; })()"
    )
    inner = await in_frame(
        page,
        session,
        f"(() => {{ const n = document.querySelector({json.dumps(selector)}); n.scrollIntoView({{block: 'center'}}); "
        "const b = n.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; })()",
    )
    x, y = frame_box[0] + inner[0], frame_box[1] + inner[1]
    for dx in (-2, 0):  # two moves, so a repeated hover is a move even when the pointer was already there
        await page.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x + dx, "y": y})


async def hover_until(page: Page, session: str, selector: str, expression: str) -> Any:
    """Move the mouse onto `selector` until `expression` in the frame is truthy, within `WAIT_SECONDS`.

    The move is repeated because one move can land while the frame is still being laid out or scrolled (an
    out-of-process frame settles on its own schedule), and then no `mousemove` reaches the element.
    """
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            await hover(page, session, selector)
            value = await in_frame(page, session, expression)
            if value:
                return value
            await asyncio.sleep(0.1)


@requires_chromium
async def test_the_chart_page_renders_in_a_sandboxed_frame_with_its_picker_tooltips_and_table(
    served: Served, tmp_path: Path
) -> None:
    canary = Canary()
    async with serve_asgi(canary) as canary_url:
        hostile = HOSTILE.format(canary=canary_url)
        async with page_service(served, tmp_path / "data") as (url, _), chromium_page(tmp_path / "profile") as page:
            await page.open(url + "/")
            await page.pick_user("alice")
            await page.ask(f"revenue by region {hostile}")
            await page.wait_until(ANSWERS, one_done(1))
            attributes = await page.evaluate(
                f"(() => {{ const f = {FRAME}; return f && [f.getAttribute('sandbox'), f.hasAttribute('src')]; }})()"
            )
            assert attributes == ["allow-scripts", False]  # scripts, but no same origin, no popups, no top navigation

            session = await frame_session(page)
            assert await in_frame(page, session, "self.origin") == "null"  # an opaque origin, not the page's
            bars = await in_frame(page, session, "[...document.querySelectorAll('rect.bar')].map(b => b.dataset.tip)")
            assert len(bars) == 1 and bars[0].startswith("West · Total Revenue: ")
            # The question's markup is text: no element came of it, and only the page's own script is there.
            assert hostile in await in_frame(page, session, "document.querySelector('h1').textContent")
            assert await in_frame(page, session, "[document.scripts.length, document.images.length]") == [1, 0]

            tip = "(() => { const t = document.getElementById('tip'); return t.hidden ? null : t.textContent; })()"
            assert await hover_until(page, session, "rect.bar", tip) == bars[0]  # the frame's script ran: tooltips
            views = "[...document.querySelectorAll('[data-panel]')].filter(p => !p.hidden).map(p => p.dataset.panel)"
            assert await in_frame(page, session, views) == ["bar"]
            for view in ("line", "table"):
                await in_frame(page, session, f"document.querySelector('[data-view={view}]').click()")
                assert await in_frame(page, session, views) == [view]
            assert "West" in await in_frame(page, session, "document.querySelector('table').innerText")
            await page.screenshot(tmp_path / "chart-page.png")
            assert page.devtools.problems == []
    assert canary.paths == []


@requires_chromium
async def test_the_frame_cannot_reach_the_page_its_storage_or_the_network(served: Served, tmp_path: Path) -> None:
    canary = Canary()
    async with serve_asgi(canary) as canary_url:
        async with page_service(served, tmp_path / "data") as (url, _), chromium_page(tmp_path / "profile") as page:
            await page.open(url + "/")
            await page.pick_user("alice")
            await page.ask("revenue by region")
            await page.wait_until(ANSWERS, one_done(1))
            address = await page.evaluate("location.href")  # the page's own: it names the thread now
            session = await frame_session(page)
            probe = await in_frame(
                page,
                session,
                f"""(async () => {{
                  const canary = {json.dumps(canary_url)}, service = {json.dumps(url + "/health")};
                  const attempt = async (what) => {{
                    try {{ return String(await what()); }} catch (e) {{ return e.name; }}
                  }};
                  const image = (src) => new Promise((done) => {{
                    const img = new Image(); img.onload = () => done("loaded"); img.onerror = () => done("refused");
                    img.src = src;
                  }});
                  return {{
                    parentDocument: await attempt(() => parent.document.title),
                    parentConfig: await attempt(() => parent.document.getElementById("omni-bridge-config").textContent),
                    storage: await attempt(() => localStorage.length),
                    cookie: await attempt(() => document.cookie),
                    fetchCanary: await attempt(async () => (await fetch(canary + "/fetch")).status),
                    fetchService: await attempt(async () => (await fetch(service, {{mode: "no-cors"}})).type),
                    image: await image(canary + "/image.png"),
                    popup: await attempt(() => window.open(canary + "/popup") === null ? "blocked" : "opened"),
                    top: await attempt(() => {{ top.location.href = canary + "/top"; return "assigned"; }}),
                  }};
                }})()""",
            )
            assert probe["parentDocument"] == probe["parentConfig"] == "SecurityError"  # no same origin
            assert probe["storage"] == probe["cookie"] == "SecurityError"
            assert probe["fetchCanary"] == probe["fetchService"] == "TypeError"  # refused by the frame's policy
            assert probe["image"] == "refused" and probe["popup"] == "blocked"
            assert probe["top"] == "SecurityError"  # no top navigation
            assert await page.evaluate("location.href") == address

            # The frame navigating itself is refused by the page's `frame-src 'none'` (a reported violation).
            await in_frame(page, session, f"location.href = {json.dumps(canary_url + '/self')}; 1")
            await page.wait_until("1", lambda _: any("frame-src" in p for p in page.devtools.problems))
    assert canary.paths == []


async def test_each_page_response_has_its_own_frame_nonce_in_its_policy_and_config(
    served: Served, tmp_path: Path
) -> None:
    async with page_service(served, tmp_path / "data") as (url, _):
        async with httpx2.AsyncClient(base_url=url) as client:
            pages = [(await client.get("/")).text for _ in range(2)]

    nonces = []
    for page in pages:
        policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
        config = re.search(r'<script id="omni-bridge-config" type="application/json">(.*?)</script>', page)
        assert policy is not None and config is not None
        (nonce,) = re.findall(r"'nonce-([A-Za-z0-9_-]{20,})'", policy.group(1))
        assert json.loads(config.group(1))["frameNonce"] == nonce
        assert "frame-src 'none'" in policy.group(1) and "child-src 'none'" in policy.group(1)
        nonces.append(nonce)
    assert nonces[0] != nonces[1] and "omni-bridge-frame-nonce" not in pages[0]
