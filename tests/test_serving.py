"""`omni_bridge._serving`: uvicorn started and stopped from Python, woken at once when asked to stop.

`PromptServer` replaces uvicorn's main loop (a tick every 0.1 s) with one that `exit_soon` wakes. What the
ticks do must still happen (the Date header), and a stop asked from another thread must still end the server.
"""

from __future__ import annotations

import asyncio
import threading
from email.utils import parsedate_to_datetime

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from omni_bridge._serving import serve_asgi, serve_asgi_in_thread


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", _hello)])


async def test_a_server_in_the_loop_answers_with_a_date_header_and_stops_when_the_block_ends() -> None:
    async with serve_asgi(APP) as url, httpx2.AsyncClient(base_url=url) as client:
        answer = await client.get("/")
    assert answer.text == "hello"
    assert parsedate_to_datetime(answer.headers["date"]).tzinfo is not None  # set by the server's tick
    async with httpx2.AsyncClient() as client:
        refused = await asyncio.gather(client.get(url), return_exceptions=True)
    assert isinstance(refused[0], httpx2.ConnectError)  # nobody listens any more


def test_a_server_on_its_own_thread_stops_when_the_block_ends() -> None:
    before = {thread.name for thread in threading.enumerate()}
    with serve_asgi_in_thread(APP) as url:
        assert httpx2.get(url).text == "hello"
        assert f"asgi {url}" in {thread.name for thread in threading.enumerate()} - before
    assert f"asgi {url}" not in {thread.name for thread in threading.enumerate()}  # joined, not left running
