"""Run `omni-bridge` on a pseudo-terminal and read its screen as a person would see it.

The command gets a real pty (stdlib `pty`), sized with `TIOCSWINSZ`; what it writes is fed to `pyte`, a
VT100 emulator, so the test reads the screen after every cursor move and redraw (Rich's live region,
prompt_toolkit's prompt and completion menu), not the raw escape codes. The emulator also answers the
cursor-position requests prompt_toolkit sends, as a terminal does. Waits have generous deadlines and poll
the screen: nothing asserts on time.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pyte

DEADLINE = 120.0
"""Seconds a wait may take at most (the command starts its own sandbox)."""
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>78]")
ENTER, TAB, ESC_ENTER = "\r", "\t", "\x1b\r"


def strip_escapes(text: str) -> str:
    """`text` without ANSI/VT escape sequences and carriage returns."""
    return _ESCAPES.sub("", text).replace("\r", "")


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty, so Ctrl-C there is SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Screen(pyte.HistoryScreen):
    """A screen that keeps the lines scrolled off its top, and answers the terminal's reports through `reply`."""

    reply: Callable[[str], None] = staticmethod(lambda data: None)

    def write_process_input(self, data: str) -> None:
        self.reply(data)


class PtyCommand:
    """`python -m omni_bridge.cli ARGS` on a pty of `columns` × `rows`."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path, columns: int = 110, rows: int = 50) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omni_bridge.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            preexec_fn=_own_terminal,
        )
        os.close(slave)
        self.screen = _Screen(columns, rows, history=10_000)
        self.screen.reply = self._reply
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()

    def _reply(self, data: str) -> None:
        os.write(self.master, data.encode())

    def text(self) -> str:
        """Everything on the screen and scrolled above it, one line per row, trailing blanks cut."""
        rows = ["".join(line[x].data for x in range(self.screen.columns)).rstrip() for line in self.screen.history.top]
        rows += [line.rstrip() for line in self.screen.display]
        return "\n".join(rows).rstrip("\n")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the command ended and closed the pty
            return False
        if not data:
            return False
        self.raw += data
        self.stream.feed(data)
        return True

    def wait_for(self, found: Callable[[str], bool], what: str) -> str:
        """Read until `found(screen text)` holds; the screen text. Fails with the screen after `DEADLINE`."""
        import time

        end = time.monotonic() + DEADLINE
        while not found(self.text()):
            if time.monotonic() > end or not self._read(0.2):
                raise AssertionError(f"never saw {what}; the screen:\n{self.text()}")
        self.settle()
        return self.text()

    def wait_for_text(self, needle: str, *, count: int = 1) -> str:
        return self.wait_for(lambda text: text.count(needle) >= count, repr(needle))

    def settle(self, *, at_most: float = 2.0) -> None:
        """Read what is already on its way (a redraw in progress), until the pty is quiet for a moment.

        A live answer redraws its spinner ten times a second and is never quiet: `at_most` seconds end the
        wait, so a key sent next (Ctrl-C) reaches the answer while it is still being written.
        """
        import time

        end = time.monotonic() + at_most
        while self._read(0.3) and select.select([self.master], [], [], 0.3)[0] and time.monotonic() < end:
            pass

    def close(self, key: str = "\x04") -> int:
        """`key` at the prompt (Ctrl-D; Ctrl-C also leaves), then the command's exit code once it has left."""
        self.send(key)
        while self._read(0.2):  # drain, so the command never blocks writing its last lines
            if self.process.poll() is not None:
                break
        return self.process.wait(timeout=DEADLINE)

    def kill(self) -> None:
        """End the command if it still runs (a failed test), and close the pty."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
