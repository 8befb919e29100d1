"""`LoopThread`: the console's event loop, run in a thread so the main thread can block on `input()`.

Why a thread: the embedded sandbox serves from the same loop as the bridge, and uvicorn takes over SIGINT
whenever it serves from the main thread (Ctrl-C would stop the sandbox, not the answer). With the loop in
a daemon thread, uvicorn leaves the signals alone; the main thread reads input (prompt_toolkit) and gets
Ctrl-C as a plain `KeyboardInterrupt`, which `call` turns into cancelling the running answer (cleanly: the
engines see `CancelledError`, finish their transcripts and tell Omni) before raising `Interrupted`.

The async resource (the bridge and its store) is entered and left by one long-lived task in that loop, so
anything inside it that must close in the task that opened it does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Interrupted", "LoopThread"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class Interrupted(Exception):
    """Ctrl-C stopped a call; its task was cancelled and has finished."""


class LoopThread(Generic[_T]):
    """Runs an async context manager's lifetime in a daemon thread's loop; the caller's thread calls into it.

    ```python
    with LoopThread(lambda: Bridge(settings)) as (runner, bridge):
        message = runner.call(bridge.answer(user="alice", question="revenue by region"))
    ```

    Args:
        resource: builds the async context manager to enter in the loop (called in the loop thread).
    """

    def __init__(self, resource: Callable[[], AbstractAsyncContextManager[_T]]) -> None:
        self._resource = resource
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()  # not bound to a loop until the host task waits on it
        self._closing = False
        self._entered: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name="omni-bridge console loop", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> tuple[LoopThread[_T], _T]:
        self._thread.start()
        try:
            value = self._entered.result()
        except BaseException:  # the resource failed to open, or Ctrl-C while it opened
            self._shutdown()
            raise
        return self, value

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._shutdown()
        if self._error is not None and exc is None:
            raise self._error

    def _shutdown(self) -> None:
        # `_closing` is set before `_loop` is read, and the host sets `_loop` before it reads `_closing`:
        # whichever comes second sees the other, so the host always learns it must stop.
        self._closing = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the host is over already
                loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _main(self) -> None:
        try:
            asyncio.run(self._host())
        except BaseException as exc:  # reported to whoever waits: the entry, or the exit
            if not self._entered.done():
                self._entered.set_exception(exc)
            else:
                self._error = exc

    async def _host(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._closing:
            return
        async with self._resource() as value:
            self._entered.set_result(value)
            await self._stop.wait()

    def call(self, coroutine: Coroutine[Any, Any, _R]) -> _R:
        """Run `coroutine` in the loop and wait for its result.

        Raises:
            Interrupted: Ctrl-C arrived while waiting; the task was cancelled and has finished.
        """
        loop = self._loop
        assert loop is not None, "call() needs the loop thread running (use the LoopThread as a context manager)"
        started: concurrent.futures.Future[asyncio.Task[_R]] = concurrent.futures.Future()
        finished: concurrent.futures.Future[None] = concurrent.futures.Future()

        def start() -> None:
            task = loop.create_task(coroutine)
            task.add_done_callback(lambda _: finished.set_result(None))
            started.set_result(task)

        loop.call_soon_threadsafe(start)
        try:
            finished.result()
        except KeyboardInterrupt:
            task = started.result()
            loop.call_soon_threadsafe(task.cancel)
            finished.result()  # the task's own clean-up (a second Ctrl-C here leaves at once)
            if task.cancelled():
                raise Interrupted from None
        task = started.result()
        return task.result()
