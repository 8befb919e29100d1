"""A response that stops as soon as the client goes away or the fake stops serving.

A scripted delay ("the model is slow") must never outlive the request it belongs to: a test that cancels
its agent run wants the fake to notice the closed connection, and a fake shutting down must not wait for a
minute-long script. So the body is sent from its own task, raced against `http.disconnect`, and registered
with an `Inflight` set that the fake can cancel from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from omni_bridge.testing._capture import CapturedRequest, Outcome
from omni_bridge.testing._faults import StreamDropped, dropping

__all__ = ["Exchange", "Inflight"]


class Inflight:
    """Tasks sending a response right now, with their loops, so they can be cancelled from another thread."""

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[None], asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()

    def add(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._tasks[task] = task.get_loop()

    def discard(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._tasks.pop(task, None)

    def cancel_all(self) -> int:
        """Cancel every task still sending; returns how many were asked to stop."""
        with self._lock:
            tasks = list(self._tasks.items())
        for task, loop in tasks:
            if not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        return len(tasks)


class Exchange(Response):
    """Send `head_delay` seconds later a status line, then `body` chunk by chunk, unless interrupted."""

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        *,
        status_code: int,
        headers: Mapping[str, str],
        media_type: str,
        captured: CapturedRequest,
        inflight: Inflight,
        outcome: Outcome,
        head_delay: float = 0.0,
    ) -> None:
        self._body = body
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._captured = captured
        self._inflight = inflight
        self._outcome: Outcome = outcome
        self._head_delay = head_delay
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sending = asyncio.create_task(self._send_all(send))
        watching = asyncio.create_task(_until_disconnect(receive))
        self._inflight.add(sending)
        try:
            await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._inflight.discard(sending)
            sending.cancel()
            watching.cancel()
            await asyncio.gather(sending, watching, return_exceptions=True)
        # A fault that broke the stream names the outcome, whether or not the client left before its end.
        faulted = self._captured.fault is not None and self._captured.fault.kind != "stall"
        if sending.done() and not sending.cancelled():
            error = sending.exception()
            if isinstance(error, StreamDropped):
                # Return without the body's end: the server closes the connection under the client.
                dropping.set(True)
                self._captured._finish("faulted")
                return
            self._captured._finish("faulted" if faulted else self._outcome if error is None else "error")
            if error is not None:
                raise error
        elif watching.done() and not watching.cancelled():
            self._captured._finish("faulted" if faulted else "disconnected")
        else:
            self._captured._finish("aborted")
            if self._started:  # end the chunked body cleanly; the client sees a stream cut short
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_all(self, send: Send) -> None:
        if self._head_delay:
            await asyncio.sleep(self._head_delay)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self._started = True
        try:
            async for chunk in self._body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await self._body.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
