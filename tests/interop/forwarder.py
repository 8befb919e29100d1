"""A loopback reverse proxy that adds credentials, for peers that cannot send custom headers.

The MCP conformance suite's client sends no `Authorization` and no user header, so against the sandbox or the
HTTP proxy it would only ever see 401. `forwarding()` serves on 127.0.0.1 and forwards every request to the
upstream with the given headers *added*; everything else passes through unchanged in both directions: method,
path and query, `Host`, `Origin` and every other request header, the body, and the response's status, headers
and body, streamed chunk by chunk as it arrives (SSE included). So the server, not the forwarder, decides what a
foreign `Host` gets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping

import httpx2
from starlette.types import Message, Receive, Scope, Send

from omni_bridge._serving import serve_asgi_in_thread

__all__ = ["forwarding"]

# Hop-by-hop headers describe one connection, not the message (RFC 9110 §7.6.1); each side sets its own.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"})


class _Forwarder:
    def __init__(self, upstream: str, added: Mapping[str, str]) -> None:
        self._upstream = upstream.rstrip("/")
        self._added = {name.lower(): value for name, value in added.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name.decode("latin-1").lower() not in _HOP_BY_HOP | self._added.keys()
        ]
        headers.extend(self._added.items())
        target = self._upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        # A fresh client per request: the forwarder keeps no state a test could trip over.
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as client:
            async with client.stream(scope["method"], target, headers=headers, content=bytes(body)) as up:
                await send(
                    {
                        "type": "http.response.start",
                        "status": up.status_code,
                        "headers": [
                            (name.encode("latin-1"), value.encode("latin-1"))
                            for name, value in up.headers.multi_items()
                            if name.lower() not in _HOP_BY_HOP
                        ],
                    }
                )
                await _pump_until_disconnect(up, receive, send)


async def _pump_until_disconnect(up: httpx2.Response, receive: Receive, send: Send) -> None:
    """Relay the upstream body as it arrives; stop when it ends or the client hangs up (an open SSE stream)."""

    async def pump() -> None:
        async for chunk in up.aiter_raw():  # raw: bytes exactly as sent, any content-encoding kept
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def disconnected() -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()

    tasks = [asyncio.create_task(pump()), asyncio.create_task(disconnected())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def forwarding(upstream: str, added: Mapping[str, str]) -> Iterator[str]:
    """Serve a forwarder to `upstream` (a base URL) on a free loopback port; yields its base URL."""
    with serve_asgi_in_thread(_Forwarder(upstream, added)) as url:
        yield url
