"""The web chat page at `/`, driven in headless Chromium over the Chrome DevTools Protocol.

The page is JavaScript (an answer streamed over `fetch`, a markdown-ish renderer, an SVG chart), so it is
tested where it runs: Debian's `chromium` (`scripts/install-chromium.sh`; the tests skip without it) opens
the page of a service served on loopback, types and clicks like a user, and the DOM is read back with
`Runtime.evaluate`. The DevTools client is the few lines below on `websockets` rather than Playwright, whose
Python package expects to download its own browser builds. Every wait polls the DOM within a bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection, connect

from omni_bridge._serving import serve_asgi
from omni_bridge.sandbox import embed_user_id
from omni_bridge.server import Service, create_app
from omni_bridge.testing import FakeAnthropic, ToolCall, text_reply, tool_then_answer
from omni_bridge.tools import mcp_headers
from tests.conftest import Served
from tests.sandbox.mcp_helpers import csv_rows, mcp_client
from tests.server.service_helpers import KEY, REVENUE, service_settings

CHROMIUM = shutil.which("chromium")
requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: run scripts/install-chromium.sh (CI does)"
)
WAIT_SECONDS = 30.0
"""The longest any one condition is waited for (an answer of the sandbox takes a second or two)."""
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--lang=en-US",
    "--window-size=1280,860",
    "--remote-debugging-port=0",
)

# What the page shows, read from its DOM.
ANSWERS = """[...document.querySelectorAll('.message.assistant')].map((n) => ({
  state: n.dataset.state,
  text: n.querySelector('.answer-text').innerText,
  bold: [...n.querySelectorAll('.answer-text strong')].map((b) => b.textContent),
  cells: [...n.querySelectorAll('.answer-text td')].map((c) => c.textContent),
  bars: [...n.querySelectorAll('figure.chart svg rect.bar')].map((b) => [b.dataset.x, Number(b.dataset.value)]),
  labels: [...n.querySelectorAll('figure.chart svg text.value')].map((t) => t.textContent),
  steps: [...n.querySelectorAll('.activity li')].map((l) => l.textContent),
  followUps: [...n.querySelectorAll('.follow-ups button')].map((b) => b.textContent),
  omni: n.querySelector('a.open-in-omni')?.href ?? null,
  outcome: n.querySelector('.outcome').hidden ? null : n.querySelector('.outcome').textContent,
  rated: [...n.querySelectorAll('.rate button[aria-pressed="true"]')].map((b) => b.dataset.rating),
  links: [...n.querySelectorAll('.answer-text a')].map((a) => a.href),
  elements: [...n.querySelectorAll('.answer-text *')].map((e) => e.localName),
}))"""
QUESTIONS = "[...document.querySelectorAll('.message.user .bubble')].map((n) => n.textContent)"
THREADS = """[...document.querySelectorAll('#threads button')].map((b) => ({
  id: b.dataset.thread,
  title: b.querySelector('.title').textContent,
  current: b.getAttribute('aria-current') === 'true',
}))"""
ALERT = "document.getElementById('alert')?.hidden ?? true ? null : document.getElementById('alert-text').textContent"
"""The chat page's alert, if shown; null on pages without one (the API docs), so a timeout there says what it saw."""
SHOWN = "(id) => getComputedStyle(document.getElementById(id)).display !== 'none'"


class DevTools:
    """A Chrome DevTools Protocol connection: numbered commands, their answers, and the page's problems."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.problems: list[str] = []
        """Uncaught exceptions, `console.error` calls and browser errors (a refused script, say) of the page."""
        self.frames: list[dict[str, Any]] = []
        """Targets auto-attached to the page (`Target.attachedToTarget`): out-of-process frames, with a `sessionId`."""

    async def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> Any:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        answer = self._pending[self._next] = asyncio.get_running_loop().create_future()
        await self._ws.send(json.dumps(message))
        reply = await answer
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    async def read(self) -> None:
        """Route answers to their callers and note the page's problems, until the connection closes."""
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    self._note(message.get("method", ""), message.get("params", {}))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AssertionError("the browser closed the DevTools connection"))

    def _note(self, method: str, params: dict[str, Any]) -> None:
        if method == "Target.attachedToTarget":
            self.frames.append(params)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.problems.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.problems.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            if entry["source"] != "network":  # refused HTTP answers: the tests provoke some on purpose
                self.problems.append(entry["text"])


class Page:
    """One tab: evaluate JavaScript, wait for the DOM, type, press keys, click, take screenshots."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.devtools.call(method, params, session=self.session)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_until(
        self, expression: str, condition: Callable[[Any], bool], *, seconds: float = WAIT_SECONDS
    ) -> Any:
        """The value of `expression` once `condition` holds for it, polled; fails after `seconds`."""
        value: Any = None
        try:
            async with asyncio.timeout(seconds):
                while True:
                    value = await self.evaluate(expression)
                    if condition(value):
                        return value
                    await asyncio.sleep(0.05)
        except TimeoutError:
            alert = await self.evaluate(ALERT)
            raise AssertionError(f"the page never got there: {value!r} (alert: {alert!r})") from None

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", {"url": url})
        await self.wait_until(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete' && "
            "document.activeElement?.id === 'question'",
            bool,
        )

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", {"text": text})

    async def press_enter(self) -> None:
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
        await self.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **key})
        await self.call("Input.dispatchKeyEvent", {"type": "keyUp", **key})

    async def ask(self, question: str) -> None:
        """Type the question and press Enter, as a user does."""
        await self.type_into("#question", question)
        await self.press_enter()

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        where = await self.evaluate(
            f"(() => {{ const node = document.querySelector({json.dumps(selector)}); if (!node) return null; "
            "node.scrollIntoView({block: 'center'}); const box = node.getBoundingClientRect(); "
            "return [box.x + box.width / 2, box.y + box.height / 2]; })()"
        )
        assert where is not None, f"nothing on the page matches {selector!r}"
        x, y = where
        await self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        press = {"x": x, "y": y, "button": "left", "clickCount": 1}
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", {"type": kind, **press})

    async def pick_user(self, user: str) -> None:
        await self.evaluate(
            f"(() => {{ const select = document.getElementById('user-select'); select.focus(); "
            f"select.value = {json.dumps(user)}; select.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
        )

    async def set_key(self, key: str) -> None:
        await self.evaluate(
            f"(() => {{ const input = document.getElementById('service-key'); input.value = {json.dumps(key)}; "
            "input.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    """The browser's DevTools address, from the line Chromium prints on stderr when it listens."""
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(WAIT_SECONDS):
        while line := (await process.stderr.readline()).decode(errors="replace"):
            if match := re.search(r"DevTools listening on (ws://\S+)", line):
                return match.group(1)
            seen.append(line.rstrip())
    raise AssertionError("chromium exited before it listened:\n" + "\n".join(seen[-20:]))


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read Chromium's stderr to its end, so a full pipe never stalls the browser."""
    while await stream.read(65536):
        pass


@contextlib.asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A tab of a headless Chromium started for the test (its own process group, killed at the end)."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        url = await _devtools_url(process)
        assert process.stderr is not None
        tasks.append(asyncio.create_task(_drain(process.stderr)))
        async with connect(url, max_size=None, proxy=None) as ws:
            devtools = DevTools(ws)
            tasks.append(asyncio.create_task(devtools.read()))
            target = await devtools.call("Target.createTarget", {"url": "about:blank"})
            attached = await devtools.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
            page = Page(devtools, attached["sessionId"])
            for domain in ("Page", "Runtime", "Log"):
                await page.call(f"{domain}.enable")
            yield page
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the browser and the helpers it started
        async with asyncio.timeout(WAIT_SECONDS):
            await process.wait()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def page_service(
    served: Served, data_dir: Path, *, fake_url: str | None = None, **overrides: Any
) -> AsyncIterator[tuple[str, Service]]:
    """The service on loopback; with no service keys (the default here) it makes a development key."""
    settings = service_settings(served, data_dir, fake_url, **({"bridge_service_keys": None} | overrides))
    service = Service(settings, host="127.0.0.1")
    async with serve_asgi(create_app(settings, service=service)) as url:
        yield url, service


async def sandbox_revenue(served: Served, user: str) -> dict[str, float]:
    """Revenue by region as the sandbox's `getData` gives it to `user`, asked directly (not through the page)."""
    async with mcp_client(served.mcp_url, mcp_headers(served.org_key, user_id=embed_user_id(user))) as client:
        result = await client.call_tool("getData", {"prompt": "revenue by region"})
    assert result.structured_content is not None
    return {region: float(value) for region, value in csv_rows(result.structured_content)}


def shown(value: float) -> str:
    """A number as the page's chart labels it: thousands separators, at most two decimals."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def one_done(count: int) -> Callable[[Any], bool]:
    return lambda answers: len(answers) == count and answers[-1]["state"] == "done"


def test_the_page_runs_only_its_own_script() -> None:
    page = resources.files("omni_bridge.server").joinpath("static/index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    pinned = f"script-src 'sha256-{digest}' 'nonce-omni-bridge-frame-nonce';"  # the nonce: Omni's chart pages
    assert pinned in policy.group(1), f"after editing the script, pin 'sha256-{digest}'"
    assert "connect-src 'self'" in policy.group(1) and "innerHTML" not in scripts[0]


@requires_chromium
async def test_each_end_user_sees_their_own_revenue_streamed_into_the_page(served: Served, tmp_path: Path) -> None:
    alice, bob = await sandbox_revenue(served, "alice"), await sandbox_revenue(served, "bob")
    assert set(alice) == {"West"} and set(bob) == {"East"}
    async with page_service(served, tmp_path / "data") as (url, _), chromium_page(tmp_path / "profile") as page:
        await page.open(url + "/")
        assert await page.evaluate(f"({SHOWN})('mode-badge') && !({SHOWN})('key-field')")  # the development key
        await page.pick_user("alice")
        await page.ask("revenue by region")

        answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
        assert await page.evaluate(QUESTIONS) == ["revenue by region"]
        assert "West" in answer["text"] and f"{alice['West']:,.2f}" in answer["cells"]
        assert "East" not in answer["text"] and f"{bob['East']:,.2f}" not in answer["text"]
        assert answer["bars"] == [["West", alice["West"]]] and answer["labels"] == [shown(alice["West"])]
        assert answer["steps"], "the progress lines of Omni's agent are shown"
        assert answer["omni"] is not None and answer["omni"].startswith(served.url + "/chat/")
        threads = await page.wait_until(THREADS, lambda threads: len(threads) == 1 and threads[0]["current"])
        await page.screenshot(tmp_path / "alice.png")

        await page.pick_user("bob")
        await page.wait_until(f"[{THREADS}, {QUESTIONS}]", lambda seen: seen == [[], []])
        await page.ask("revenue by region")
        answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
        assert "East" in answer["text"] and f"{bob['East']:,.2f}" in answer["cells"]
        assert "West" not in answer["text"] and answer["bars"] == [["East", bob["East"]]]

        await page.pick_user("alice")  # her conversation is still hers: reopened from the sidebar
        await page.wait_until(THREADS, lambda seen: [t["id"] for t in seen] == [threads[0]["id"]])
        await page.click(f'#threads button[data-thread="{threads[0]["id"]}"]')
        answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
        assert answer["bars"] == [["West", alice["West"]]] and "East" not in answer["text"]
        assert await page.evaluate(QUESTIONS) == ["revenue by region"]
        assert page.devtools.problems == []


@requires_chromium
async def test_a_follow_up_button_asks_in_the_same_thread(served: Served, tmp_path: Path) -> None:
    answer_text = (
        "Here is **revenue by region** from `getData` <img src=x onerror=alert(1)> [a link](javascript:alert(1)) "
        "[the docs](https://docs.example/omni):\n{results}\nFollow-ups: Revenue by month | Top products"
    )
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE, answer=answer_text))
    async with fake.serve() as fake_url:
        async with page_service(served, tmp_path / "data", fake_url=fake_url) as (url, service):
            async with chromium_page(tmp_path / "profile") as page:
                await page.open(url + "/")
                await page.ask("revenue by region")
                first = (await page.wait_until(ANSWERS, one_done(1)))[0]
                assert first["bold"] == ["revenue by region"] and "code" in first["elements"]
                assert "<img src=x onerror=alert(1)>" in first["text"] and "img" not in first["elements"]
                assert first["links"] == ["https://docs.example/omni"]  # a `javascript:` link stays text
                assert "[a link](javascript:alert(1))" in first["text"]
                assert first["followUps"] == ["Revenue by month", "Top products"]
                assert "Follow-ups" not in first["text"]
                assert [step.split(":")[0] for step in first["steps"]] == ["getData"]  # a finished tool call
                assert first["bars"] and all(x == "West" for x, _ in first["bars"])

                await page.screenshot(tmp_path / "follow-ups.png")
                await page.click(".message.assistant .follow-ups button")
                answers = await page.wait_until(ANSWERS, one_done(2))
                assert await page.evaluate(QUESTIONS) == ["revenue by region", "Revenue by month"]
                assert answers[1]["followUps"] == ["Revenue by month", "Top products"]
                threads = await page.evaluate(THREADS)
                assert len(threads) == 1 and threads[0]["current"]

                await page.click(".message.assistant:last-of-type .rate button[data-rating='up']")
                await page.wait_until(ANSWERS, lambda answers: answers[1]["rated"] == ["up"])
                assert page.devtools.problems == []

            headers = {"Authorization": f"Bearer {service.dev_key}", "X-Bridge-User": "alice"}
            async with httpx2.AsyncClient(base_url=url, headers=headers) as client:
                stored = (await client.get(f"/v1/threads/{threads[0]['id']}/messages")).json()["data"]
            assert [(m["role"], m["parts"][0].get("text")) for m in stored if m["role"] == "user"] == [
                ("user", "revenue by region"),
                ("user", "Revenue by month"),
            ]
            assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
            assert [(m["feedback"] or {}).get("rating") for m in stored] == [None, None, None, "up"]


@requires_chromium
async def test_errors_from_the_service_are_shown_and_the_question_kept(served: Served, tmp_path: Path) -> None:
    async with page_service(served, tmp_path / "data", bridge_service_keys=f"acme:{KEY}") as (url, _):
        async with chromium_page(tmp_path / "profile") as page:
            await page.open(url + "/")
            assert await page.evaluate(f"({SHOWN})('key-field') && !({SHOWN})('mode-badge')")

            await page.set_key("not-the-service-key")
            await page.ask("revenue by region")
            alert = await page.wait_until(ALERT, lambda text: text is not None)
            assert alert.startswith("Not authorized: the service key is not valid")
            assert KEY not in alert and await page.evaluate(QUESTIONS) == []

            await page.set_key(KEY)
            # The key takes effect once the thread list loads with it (an empty list); only then ask again.
            await page.wait_until("!document.getElementById('threads-empty').hidden", bool)
            await page.evaluate(
                "(() => { const q = document.getElementById('question'); q.value = 'x'.repeat(20001); q.focus(); })()"
            )
            await page.press_enter()
            alert = await page.wait_until(ALERT, lambda text: text is not None and "Bad request" in text)
            assert "at most 20000 characters" in alert

            await page.evaluate("document.getElementById('question').value = ''")
            await page.ask("revenue by region")
            answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
            assert await page.evaluate(ALERT) is None and "West" in answer["text"]
            assert page.devtools.problems == []


@requires_chromium
async def test_the_answer_streams_in_and_stop_ends_it(served: Served, tmp_path: Path) -> None:
    full = "Revenue grew in every region this year, the West most of all."
    fake = FakeAnthropic(text_reply(full, delay_seconds=2.5))  # 16 characters per frame, each 2.5 s apart
    async with fake.serve() as fake_url, page_service(served, tmp_path / "data", fake_url=fake_url) as (url, _):
        async with chromium_page(tmp_path / "profile") as page:
            await page.open(url + "/")
            await page.ask("how did revenue do?")
            answer = (await page.wait_until(ANSWERS, lambda seen: len(seen) == 1 and seen[0]["text"].strip()))[0]
            assert answer["state"] == "streaming" and full.startswith(answer["text"]) and answer["text"] != full
            assert await page.evaluate(f"({SHOWN})('stop') && document.getElementById('send').disabled")

            await page.click("#stop")
            answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
            assert answer["outcome"] == "Stopped before the answer was complete."
            assert answer["text"] and full.startswith(answer["text"]) and answer["text"] != full
            assert await page.evaluate(f"!({SHOWN})('stop') && !document.getElementById('send').disabled")
            assert page.devtools.problems == []


PROVENANCE = """[...document.querySelectorAll('.message.assistant')].map((n) => {
  const box = n.querySelector('details.provenance');
  return box && {
    open: box.open,
    summary: box.querySelector('summary').textContent,
    facts: [...box.querySelectorAll('dl.query')].map((dl) => Object.fromEntries(
      [...dl.querySelectorAll('dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))),
    links: [...box.querySelectorAll('a')].map((a) => a.href),
    partial: [...box.querySelectorAll('.partial')].length,
  };
})"""


@requires_chromium
@pytest.mark.parametrize("engine", ["omni", "claude"])
async def test_how_this_was_computed_opens_under_the_answer(engine: str, served: Served, tmp_path: Path) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "total sales last month"})))
    async with fake.serve() as fake_url:
        async with (
            page_service(served, tmp_path / "data", fake_url=fake_url if engine == "claude" else None) as (url, _),
            chromium_page(tmp_path / "profile") as page,
        ):
            await page.open(url + "/")
            await page.pick_user("alice")
            await page.ask("total sales last month")
            await page.wait_until(ANSWERS, one_done(1))
            [box] = await page.evaluate(PROVENANCE)
            assert box is not None and box["summary"] == "How this was computed" and not box["open"]  # one click away
            [facts] = box["facts"]
            assert facts["Topic"] == "order_items" and facts["Fields"] == "order_items.total_revenue"
            assert facts["Filters"] == "orders.created_at: 2026-10-01 to 2026-10-31"
            assert facts["Your access"] == "customers.region: West" and facts["Rows"] == "1"
            assert box["links"] and box["links"][0].startswith(served.url + "/chat/") and box["partial"] == 0
            await page.click(".message.assistant details.provenance summary")
            opened = await page.wait_until(PROVENANCE, lambda boxes: boxes[0]["open"])
            assert opened[0]["facts"] == box["facts"]
            await page.screenshot(tmp_path / f"provenance-{engine}.png")
            assert page.devtools.problems == []  # no CSP violation, no script error
