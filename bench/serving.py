"""Benchmark of stopping a server: `serve_asgi`'s `PromptServer` against uvicorn's own `Server`, in one run.

    .venv/bin/python bench/serving.py [--stops 40] [--json]

Why: every embedded sandbox, fake model and test service is a uvicorn server started and stopped from Python;
the console's exit waits for one. uvicorn notices `should_exit` on its next 0.1 s tick; `PromptServer` is woken
by `exit_soon()` at once. Both then run uvicorn's own shutdown (which waits 0.1 s for connections to finish).

How: a one-route Starlette app is served on loopback, answers one request, and is stopped `--stops` times
each way, alternating. JSON keys (`--json`, last line): `prompt_stop_median_ms`, `prompt_stop_max_ms`,
`uvicorn_stop_median_ms`, `uvicorn_stop_max_ms` (the baseline), `stop_saved_median_ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import _serve
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from omni_bridge._serving import PromptServer, bind


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", _hello)])


async def _one_stop(server: uvicorn.Server, stop: str) -> float:
    """Serve, answer one request, then the seconds from asking the server to stop until it has stopped."""
    sock = bind("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # why it could not start
        await asyncio.sleep(0.005)
    async with httpx2.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")).text == "hello"
    started = time.perf_counter()
    if stop == "prompt":
        assert isinstance(server, PromptServer)
        server.exit_soon()
    else:
        server.should_exit = True
    await task
    sock.close()
    return time.perf_counter() - started


async def main(stops: int, as_json: bool) -> None:

    def config() -> uvicorn.Config:
        return uvicorn.Config(APP, log_config=None, access_log=False, lifespan="on")

    times: dict[str, list[float]] = {"prompt": [], "uvicorn": []}
    for n in range(stops):
        times["prompt"].append(await _one_stop(PromptServer(config()), "prompt"))
        times["uvicorn"].append(await _one_stop(uvicorn.Server(config()), "uvicorn"))
        if (n + 1) % 10 == 0:
            _serve.say(f"  {n + 1}/{stops} stops each way")
    figures: dict[str, float] = {}
    print(f"stopping a server, {stops} times each way      median      max")
    for name, label in (("prompt", "PromptServer.exit_soon()"), ("uvicorn", "uvicorn.Server, should_exit")):
        median, worst = statistics.median(times[name]) * 1000, max(times[name]) * 1000
        print(f"  {label:<38} {median:7.1f} ms {worst:7.1f} ms")
        figures |= {f"{name}_stop_median_ms": median, f"{name}_stop_max_ms": worst}
    figures["stop_saved_median_ms"] = figures["uvicorn_stop_median_ms"] - figures["prompt_stop_median_ms"]
    if as_json:
        _serve.print_json(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stops", type=int, default=40, help="stops timed each way (default 40)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = parser.parse_args()
    asyncio.run(main(args.stops, args.json))
