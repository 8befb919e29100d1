"""The web page's address names the open thread, and a failure is shown once.

`?thread=<id>` is what the jobs API's `omniChatUrl` links carry, so the page opens that thread; as the user
switches, starts and leaves threads the address follows (a reload, Back, or a copied link reopens the same
thread), and a thread the end user cannot open is one error and a new conversation. Headless Chromium drives
the page as in `test_web_page`; every wait polls the DOM within a bound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.sandbox import embed_user_id
from omni_bridge.testing import FakeAnthropic, StreamFault, error_reply, text_reply
from tests.conftest import Served
from tests.server.service_helpers import KEY
from tests.server.test_web_page import (
    ANSWERS,
    QUESTIONS,
    THREADS,
    WAIT_SECONDS,
    Page,
    chromium_page,
    one_done,
    page_service,
    requires_chromium,
)

# Every place the page can show a failure: the error box above the conversation and each answer's own.
ERRORS = """[document.getElementById('alert'), ...document.querySelectorAll('.message .problem')]
  .filter((n) => !n.hidden).map((n) => (n.id === 'alert' ? n.querySelector('#alert-text') : n).textContent)"""
WELCOME = "document.querySelector('#messages .welcome') !== null"
STARTED = "document.readyState === 'complete' && document.activeElement?.id === 'question'"
"""The page's script has started: it focuses the question box last."""


async def arrive(page: Page, url: str) -> None:
    """Navigate to `url` (the page may change its address once there, so `Page.open` cannot wait for it)."""
    await page.call("Page.navigate", {"url": url})
    await page.wait_until(STARTED, bool)


async def reload(page: Page) -> None:
    await page.call("Page.reload")
    await page.wait_until(STARTED, bool)


async def times_shown(page: Page, text: str) -> int:
    """How many times `text` is on the page, as a reader sees it."""
    count: int = await page.evaluate(f"document.body.innerText.split({json.dumps(text)}).length - 1")
    return count


async def poll_json(client: httpx2.AsyncClient, path: str, done: Callable[[Any], bool]) -> Any:
    """GET `path` until `done` holds for its JSON body; fails after `WAIT_SECONDS`."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            body = (await client.get(path)).json()
            if done(body):
                return body
            await asyncio.sleep(0.05)


async def finished_thread(client: httpx2.AsyncClient, question: str) -> str:
    """A thread asked `question` over the HTTP API, once its answer is over."""
    started = (await client.post("/v1/threads", json={"message": {"text": question}})).json()["data"]
    await poll_json(client, f"/v1/responses/{started['response_id']}", lambda r: r["data"]["status"] == "succeeded")
    thread_id: str = started["thread_id"]
    return thread_id


def api_client(url: str, key: str, user: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}", "X-Bridge-User": user}, timeout=30
    )


def search(thread_id: str | None) -> str:
    """`location.search` when the address names `thread_id` (none: a new conversation)."""
    return f"?thread={thread_id}" if thread_id else ""


@requires_chromium
async def test_a_jobs_link_opens_its_thread_and_the_address_follows_the_open_thread(
    served: Served, tmp_path: Path
) -> None:
    async with page_service(served, tmp_path / "data") as (url, service):
        assert service.dev_key is not None
        async with api_client(url, service.dev_key, "alice") as alice:
            body = {"modelId": "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f", "prompt": "What is our revenue by region?"}
            created = await alice.post("/api/v1/ai/jobs", params={"userId": embed_user_id("alice")}, json=body)
            assert created.status_code == 201, created.text
            job = created.json()
            await poll_json(alice, f"/api/v1/ai/jobs/{job['jobId']}", lambda status: status["state"] == "COMPLETE")
        link, job_thread = job["omniChatUrl"], job["conversationId"]
        assert link == f"{url}/?thread={job_thread}"  # the page the link points at, and the query it reads

        async with chromium_page(tmp_path / "profile") as page:
            await arrive(page, link)
            answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
            assert await page.evaluate(QUESTIONS) == ["What is our revenue by region?"] and "West" in answer["text"]
            await page.wait_until(THREADS, lambda seen: [(t["id"], t["current"]) for t in seen] == [(job_thread, True)])

            await page.click("#new-thread")  # a new conversation: the address names no thread
            await page.wait_until(f"[location.search, {WELCOME}]", lambda seen: seen == ["", True])
            await page.ask("revenue by region")
            await page.wait_until(ANSWERS, one_done(1))
            threads = await page.wait_until(THREADS, lambda seen: len(seen) == 2)
            [new_thread] = [t["id"] for t in threads if t["id"] != job_thread]
            assert await page.evaluate("location.search") == search(new_thread)

            await page.click(f'#threads button[data-thread="{job_thread}"]')  # switching threads
            await page.wait_until(
                f"[location.search, {QUESTIONS}]", lambda seen: seen == [search(job_thread), [body["prompt"]]]
            )
            await page.evaluate("history.back()")  # Back: the thread before it
            await page.wait_until(
                f"[location.search, {QUESTIONS}]", lambda seen: seen == [search(new_thread), ["revenue by region"]]
            )

            await reload(page)  # a reload reopens the thread the address names, with its messages
            answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
            assert "West" in answer["text"] and await page.evaluate(QUESTIONS) == ["revenue by region"]
            assert await page.evaluate("location.search") == search(new_thread)
            current = await page.wait_until(THREADS, lambda seen: any(t["current"] for t in seen))
            assert [t["id"] for t in current if t["current"]] == [new_thread]
            assert page.devtools.problems == []


@requires_chromium
async def test_the_end_user_chosen_is_kept_so_a_reload_reopens_their_thread(served: Served, tmp_path: Path) -> None:
    async with page_service(served, tmp_path / "data") as (url, _), chromium_page(tmp_path / "profile") as page:
        await arrive(page, url + "/")
        await page.pick_user("bob")
        await page.ask("revenue by region")
        answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
        assert "East" in answer["text"]
        [thread] = await page.wait_until(THREADS, lambda seen: len(seen) == 1)
        await reload(page)
        answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
        assert "East" in answer["text"] and await page.evaluate("document.getElementById('user-select').value") == "bob"
        assert await page.evaluate(f"[location.search, {ERRORS}]") == [search(thread["id"]), []]
        assert page.devtools.problems == []


@requires_chromium
async def test_an_unknown_or_foreign_thread_is_one_error_and_a_new_conversation(served: Served, tmp_path: Path) -> None:
    async with page_service(served, tmp_path / "data") as (url, service):
        assert service.dev_key is not None
        async with api_client(url, service.dev_key, "bob") as bob:
            bobs = await finished_thread(bob, "revenue by region")
        async with chromium_page(tmp_path / "profile") as page:
            for thread_id in ("thr_does_not_exist", bobs):  # unknown, then another end user's (the page is alice's)
                await arrive(page, f"{url}/?thread={thread_id}")
                errors = await page.wait_until(ERRORS, bool)
                assert errors == [
                    f"Not found: the conversation “{thread_id}” does not exist or belongs to another end user; "
                    "a new conversation is open instead."
                ]
                assert await page.evaluate(f"[location.search, {WELCOME}, {QUESTIONS}]") == ["", True, []]
                assert await page.evaluate(ERRORS) == errors  # still once, after the thread list has loaded
                assert bobs not in json.dumps(await page.evaluate(THREADS))

            await page.ask("revenue by region")  # the question goes to a new thread of alice's, and the error goes
            answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
            assert "West" in answer["text"] and await page.evaluate(ERRORS) == []
            [thread] = await page.wait_until(THREADS, lambda seen: len(seen) == 1)
            assert thread["id"] != bobs and await page.evaluate("location.search") == search(thread["id"])


@requires_chromium
async def test_a_linked_thread_opens_once_the_service_key_is_entered(served: Served, tmp_path: Path) -> None:
    async with page_service(served, tmp_path / "data", bridge_service_keys=f"acme:{KEY}") as (url, _):
        async with api_client(url, KEY, "alice") as alice:
            thread_id = await finished_thread(alice, "revenue by region")
        async with chromium_page(tmp_path / "profile") as page:
            await arrive(page, f"{url}/?thread={thread_id}")
            # No key yet: nothing asked, no error, and the address still names the thread.
            assert await page.evaluate(f"[location.search, {WELCOME}, {ERRORS}]") == [search(thread_id), True, []]
            await page.set_key("not-the-service-key")  # a wrong key: one error, and the address keeps the thread
            [error] = await page.wait_until(ERRORS, bool)
            assert error.startswith("Not authorized") and await page.evaluate("location.search") == search(thread_id)
            await page.set_key(KEY)
            answer = (await page.wait_until(ANSWERS, one_done(1)))[0]
            assert "West" in answer["text"] and await page.evaluate(QUESTIONS) == ["revenue by region"]
            assert await page.evaluate(f"[location.search, {ERRORS}]") == [search(thread_id), []]
            assert page.devtools.problems == []


FAILURES: dict[str, Any] = {
    "api_error": {"responder": lambda request: error_reply(400, "invalid_request_error", "The prompt is malformed.")},
    "stream_broke": {
        "responder": lambda request: text_reply("Revenue grew in every region this year, the West most of all."),
        "faults": [StreamFault("truncate", after_events=5, times=None)],
    },
}


@requires_chromium
@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_a_failed_answer_shows_its_error_once(failure: str, served: Served, tmp_path: Path) -> None:
    fake = FakeAnthropic(**FAILURES[failure])
    async with fake.serve() as fake_url, page_service(served, tmp_path / "data", fake_url=fake_url) as (url, _):
        async with chromium_page(tmp_path / "profile") as page:
            await arrive(page, url + "/")
            await page.ask("how did revenue do?")
            await page.wait_until(ANSWERS, one_done(1))
            [error] = await page.wait_until(ERRORS, bool)
            await page.screenshot(tmp_path / "failed.png")
            assert error.startswith("The language model")
            assert await times_shown(page, error) == 1  # not in the answer's text, nor an alert besides
            text = (await page.evaluate(ANSWERS))[0]["text"]
            assert "language model" not in text and "try again" not in text.lower()  # nor reworded there
            assert await page.evaluate("document.querySelector('.message.assistant .outcome').hidden")

            await reload(page)  # the stored answer: again one error
            await page.wait_until(ANSWERS, one_done(1))
            [stored] = await page.wait_until(ERRORS, bool)
            assert await times_shown(page, stored) == 1
            assert "try again" not in (await page.evaluate(ANSWERS))[0]["text"].lower()
            assert page.devtools.problems == []
