"""Outbox: one WebSocket connection's bounded, conflating queue.

The hub puts changes in without ever waiting; the connection's task takes
them out as fast as its socket accepts. A client that keeps up gets every
message. Only when more than ``size`` messages wait does the outbox collapse
queued ``eventCapacityUpdate``s of one event into the newest (it carries the
full counts; ``seq`` still only rises). If that is not enough — too many
messages that cannot be collapsed — the client is too slow: the outbox drops
what it holds and asks for a close with 1013.
"""

from __future__ import annotations

import collections
import uuid

import trio

from eventd.realtime.hub import Change, Subscriber

TRY_AGAIN_LATER = 1013  # WebSocket close code: the server is overloaded for this client

# A queued message; a collapsed capacity update is emptied in place.
_Slot = list[Change | None]


class Closing(Exception):
    """The connection is to be closed with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Outbox(Subscriber):
    def __init__(self, size: int) -> None:
        self._size = size
        self._queue: collections.deque[_Slot] = collections.deque()
        self._capacity_updates: dict[uuid.UUID, list[_Slot]] = {}
        self._live = 0
        self._close_code: int | None = None
        self._ready = trio.Event()
        self.collapsed = 0

    @property
    def closed(self) -> bool:
        return self._close_code is not None

    def put_nowait(self, change: Change) -> None:
        if self._close_code is not None:
            return
        slot: _Slot = [change]
        self._queue.append(slot)
        self._live += 1
        if change.type == "eventCapacityUpdate":
            self._capacity_updates.setdefault(change.event.id, []).append(slot)
        if self._live > self._size:
            self._collapse()
            if self._live > self._size:
                self.close_nowait(TRY_AGAIN_LATER)
                return
        self._ready.set()

    def close_nowait(self, code: int) -> None:
        """Drop what is queued; the next :meth:`get` raises :class:`Closing`."""
        if self._close_code is None:
            self._close_code = code
            self._queue.clear()
            self._capacity_updates.clear()
            self._live = 0
            self._ready.set()

    async def get(self) -> Change:
        """The next change to send; raises :class:`Closing` when asked to close."""
        while True:
            if self._close_code is not None:
                raise Closing(self._close_code)
            while self._queue:
                slot = self._queue.popleft()
                change = slot[0]
                if change is None:
                    continue
                self._live -= 1
                if change.type == "eventCapacityUpdate":
                    pending = self._capacity_updates[change.event.id]
                    pending.remove(slot)  # it is the oldest live one: first in the list
                    if not pending:
                        del self._capacity_updates[change.event.id]
                return change
            self._ready = trio.Event()
            await self._ready.wait()

    def _collapse(self) -> None:
        for event_id, pending in self._capacity_updates.items():
            for slot in pending[:-1]:
                slot[0] = None
                self._live -= 1
                self.collapsed += 1
            self._capacity_updates[event_id] = pending[-1:]
        self._queue = collections.deque(slot for slot in self._queue if slot[0] is not None)

    def __len__(self) -> int:
        return self._live
