"""Outbox: one WebSocket connection's bounded, conflating queue.

The hub puts changes in without ever waiting; the connection's task takes
them out as fast as its socket accepts. A queued ``eventCapacityUpdate`` is
replaced by a newer one for the same event (the newer carries the full
counts), moving to the back so that ``seq`` still only rises. When more than
``size`` messages that cannot be collapsed are waiting, the client is too
slow: the outbox drops what it holds and asks for a close with 1013.
"""

from __future__ import annotations

import collections
import uuid

import trio

from eventd.realtime.hub import Change, Subscriber

TRY_AGAIN_LATER = 1013  # WebSocket close code: the server is overloaded for this client


class Closing(Exception):
    """The connection is to be closed with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Outbox(Subscriber):
    def __init__(self, size: int) -> None:
        self._size = size
        # Slots are one-item lists so a collapsed update can be emptied in place.
        self._queue: collections.deque[list[Change | None]] = collections.deque()
        self._pending_capacity: dict[uuid.UUID, list[Change | None]] = {}
        self._live = 0
        self._close_code: int | None = None
        self._ready = trio.Event()
        self.collapsed = 0

    @property
    def overflowed(self) -> bool:
        return self._close_code == TRY_AGAIN_LATER

    def put_nowait(self, change: Change) -> None:
        if self._close_code is not None:
            return
        if change.type == "eventCapacityUpdate":
            older = self._pending_capacity.get(change.event.id)
            if older is not None and older[0] is not None:
                older[0] = None
                self._live -= 1
                self.collapsed += 1
        slot: list[Change | None] = [change]
        self._queue.append(slot)
        self._live += 1
        if change.type == "eventCapacityUpdate":
            self._pending_capacity[change.event.id] = slot
        if self._live > self._size:
            self.close_nowait(TRY_AGAIN_LATER)
            return
        if len(self._queue) > 2 * self._size:
            self._compact()
        self._ready.set()

    def close_nowait(self, code: int) -> None:
        """Drop what is queued; the next :meth:`get` raises :class:`Closing`."""
        if self._close_code is None:
            self._close_code = code
            self._queue.clear()
            self._pending_capacity.clear()
            self._live = 0
            self._ready.set()

    async def get(self) -> Change:
        """The next change to send; raises :class:`Closing` when asked to close."""
        while True:
            if self._close_code is not None:
                raise Closing(self._close_code)
            while self._queue:
                [change] = self._queue.popleft()
                if change is None:
                    continue
                self._live -= 1
                if self._pending_capacity.get(change.event.id, [None])[0] is change:
                    del self._pending_capacity[change.event.id]
                return change
            self._ready = trio.Event()
            await self._ready.wait()

    def _compact(self) -> None:
        self._queue = collections.deque(slot for slot in self._queue if slot[0] is not None)

    def __len__(self) -> int:
        return self._live
