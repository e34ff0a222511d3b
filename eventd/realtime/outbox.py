"""Outbox: one WebSocket connection's bounded, conflating queue.

The hub puts changes in without ever waiting; the fan-out takes them out as
fast as the connection's socket accepts them. A client that keeps up gets every
message. Only when more than ``size`` messages wait does the outbox collapse
queued ``eventCapacityUpdate``s of one event into the newest (it carries the
full counts; ``seq`` still only rises). If that is not enough — too many
messages that cannot be collapsed — the client is too slow: the outbox drops
what it holds and asks for a close with 1013.

A ``queueUpdate`` (a queue's state, eventd.realtime.queue_updates) is no
change: a newer one replaces the one still queued
(:meth:`Outbox.put_state_nowait`), so a slow client holds at most one.

Its consumer is told by ``on_ready`` when there is something to
:meth:`Outbox.take_nowait` (or a close to make) and takes everything at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from eventd.realtime.changes import Change
from eventd.realtime.hub import Subscriber
from eventd.realtime.queue_updates import QueueUpdate

TRY_AGAIN_LATER = 1013  # WebSocket close code: the server is overloaded for this client


class Closing(Exception):
    """The connection is to be closed with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Outbox(Subscriber):
    __slots__ = ("_size", "_on_ready", "_queue", "_close_code", "floor")

    def __init__(self, size: int, on_ready: Callable[[], None] | None = None) -> None:
        """``on_ready`` is called when the outbox gets something after being empty, and on close."""
        self._size = size
        self._on_ready = on_ready
        # A list, not a deque: most of the time it holds 0 or 1.
        self._queue: list[Change | QueueUpdate] = []
        self._close_code: int | None = None
        # A one-event stream's snapshot (or replay) already covers changes up to
        # this seq: one its actor published late (held for an earlier change
        # from another daemon) is not sent again.
        self.floor = -1

    @property
    def closed(self) -> bool:
        return self._close_code is not None

    @property
    def close_code(self) -> int | None:
        return self._close_code

    def put_nowait(self, change: Change) -> None:
        if self._close_code is not None or change.seq <= self.floor:
            return
        self._queue.append(change)
        if len(self._queue) > self._size:
            self._collapse()
            if len(self._queue) > self._size:
                self.close_nowait(TRY_AGAIN_LATER)
                return
        if len(self._queue) == 1:  # was empty (or collapsed to one): tell the taker
            self._ready()

    def put_state_nowait(self, update: QueueUpdate) -> None:
        """Queue a queueUpdate in place of one still queued: a state, only the newest counts."""
        if self._close_code is not None:
            return
        queue = self._queue
        for n in range(len(queue) - 1, -1, -1):
            if queue[n].type == "queueUpdate":
                del queue[n]  # the newer goes last: after the changes queued since
                break
        queue.append(update)
        if len(queue) == 1:
            self._ready()

    def close_nowait(self, code: int) -> None:
        """Drop what is queued; :meth:`take_nowait` raises :class:`Closing` from now on."""
        if self._close_code is None:
            self._close_code = code
            self._queue = []
            self._ready()

    def take_nowait(self) -> list[Change | QueueUpdate]:
        """Everything queued, oldest first (maybe nothing); :class:`Closing` when asked to close."""
        if self._close_code is not None:
            raise Closing(self._close_code)
        taken, self._queue = self._queue, []
        return taken

    def _ready(self) -> None:
        if self._on_ready is not None:
            self._on_ready()

    def _collapse(self) -> None:
        """Keep only the newest queued capacity update of each event, where it stands."""
        newest_seen: set[uuid.UUID] = set()
        kept: list[Change | QueueUpdate] = []
        for change in reversed(self._queue):
            if isinstance(change, Change) and change.type == "eventCapacityUpdate":
                if change.event.id in newest_seen:
                    continue
                newest_seen.add(change.event.id)
            kept.append(change)
        kept.reverse()
        self._queue = kept

    def __len__(self) -> int:
        """How many changes wait to be taken."""
        return len(self._queue)
