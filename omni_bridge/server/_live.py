"""`LiveEvents`: a running response's events in memory, for the followers on the worker that runs it.

The runner numbers each event as it records it (from 1, in order) and hands it here and to its writer; the
store numbers the same events the same way as the writer appends them (on from the last, one writer per
lease), so an event has one `seq` whether a follower got it live or from the store, and a client that
reconnects with `Last-Event-ID` replays exactly what it had not seen.

Memory is bounded per response, never per follower: the buffer keeps the events not yet written and at most
`KEEP_WRITTEN` written ones before them; older written events are dropped, and a follower that fell behind
them reads them from the store (`after` says so with `None`), then carries on here. A follower holds only its
own position. The runner lets go of the buffer when the run ends; followers still reading it hold it until
they have caught up, then it goes with them.
"""

from __future__ import annotations

import asyncio

from omni_bridge.stores import Owner, StoredEvent

__all__ = ["KEEP_WRITTEN", "LiveEvents"]

KEEP_WRITTEN = 256
"""Written events kept in memory behind the unwritten ones, for followers a little behind."""


class LiveEvents:
    """One running response's events as they are produced (see the module docstring).

    Args:
        response_id: the response.
        owner: whose response it is: only their followers read it.
        keep_written: written events kept in memory (`KEEP_WRITTEN`).
    """

    def __init__(self, response_id: str, owner: Owner, *, keep_written: int = KEEP_WRITTEN) -> None:
        self.response_id = response_id
        self.owner = owner
        self.keep_written = keep_written
        self.last_seq = 0
        """The number of the latest event."""
        self.written_seq = 0
        """The number of the latest event known to be in the store."""
        self.closed = False
        """Set when the run has no more events to give (it ended, however it ended)."""
        self._events: list[StoredEvent] = []
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<LiveEvents {self.response_id} last={self.last_seq} written={self.written_seq} "
            f"held={len(self._events)} {state}>"
        )

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next event (or at `close`): take it before `after`, then wait on it if nothing was new."""
        return self._changed

    def add(self, event: dict[str, object]) -> int:
        """Take the next event; its number."""
        if self.closed:
            raise RuntimeError(f"the live events of response {self.response_id} are closed")
        self.last_seq += 1
        self._events.append(StoredEvent.model_construct(seq=self.last_seq, event=event))
        self._wake()
        return self.last_seq

    def written(self, seq: int) -> None:
        """Note that the events up to `seq` are in the store; drop written ones past `keep_written`."""
        self.written_seq = max(self.written_seq, seq)
        written_held = self.written_seq - self._first_seq() + 1
        # In steps of `keep_written`, so a long run does not copy the list at every write.
        if written_held > 2 * self.keep_written:
            del self._events[: written_held - self.keep_written]

    def after(self, seq: int) -> list[StoredEvent] | None:
        """The events numbered above `seq`; `None` when some of them were dropped (read those from the store)."""
        first = self._first_seq()
        if seq + 1 < first:
            return None
        return self._events[seq + 1 - first :]

    def close(self) -> None:
        """No more events: wake the followers (one that did not get a `final_message` goes on from the store)."""
        if not self.closed:
            self.closed = True
            self._wake()

    def _first_seq(self) -> int:
        return self._events[0].seq if self._events else self.last_seq + 1

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
