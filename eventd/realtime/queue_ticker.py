"""The queue ticker: once a second, each followed queue's state to its stream here.

One task per daemon, for every event (not one per event). Each second it
asks the database (:class:`~eventd.storage.queue.QueueTick`, through the
writer) to open the queues whose opening has come — any event, so a queue
opens on time with nobody watching — and for the states of the queues of the
events this daemon's clients follow, computed from the database's clock:
every daemon sends the same numbers, and one started late sends the
frontier where it stands at once. While a queue moves (someone still waits,
or its numbers changed) each of them becomes one ``queueUpdate``, handed to
the hub for the event's subscribers here (:meth:`~eventd.realtime.hub.Hub.publish_state`).

The seconds are trio's clock, so tests drive the ticker with ``MockClock``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import trio

from eventd.errors import EventdError
from eventd.realtime.hub import Hub
from eventd.realtime.queue_updates import QueueUpdate
from eventd.storage.queue import QueueState

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0

ReadStates = Callable[[list[uuid.UUID]], Awaitable[list[QueueState]]]


class QueueTicker:
    def __init__(self, read_states: ReadStates, hub: Hub, seconds: float = TICK_SECONDS) -> None:
        self._read_states = read_states
        self._hub = hub
        self._seconds = seconds
        self._last: dict[uuid.UUID, QueueUpdate] = {}
        self.ticks = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        due = trio.current_time()
        while True:
            await self.tick()
            # On the second, from the first tick; a tick that ran long skips what it missed.
            due += self._seconds
            now = trio.current_time()
            if due < now:
                due = now + self._seconds - (now - due) % self._seconds
            await trio.sleep_until(due)

    async def tick(self) -> list[QueueUpdate]:
        """Open what is due; publish each followed queue that moves. Returns what it sent."""
        self.ticks += 1
        try:
            states = await self._read_states(self._hub.watched_events())
        except EventdError as error:  # the database is away: the next second tries again
            log.warning("queue tick failed: %s", error.detail)
            return []
        sent = []
        last, self._last = self._last, {}
        for state in states:
            update = self._update(state, last.get(state.event_id))
            self._last[state.event_id] = update
            previous = last.get(state.event_id)
            if (state.waiting > 0 or previous is None or previous.counts != update.counts
                    or self._hub.current_state(state.event_id) is None):
                self._hub.publish_state(update)
                sent.append(update)
        return sent

    @staticmethod
    def _update(state: QueueState, previous: QueueUpdate | None) -> QueueUpdate:
        # The frontier never goes back in what one daemon sends, even across a rate
        # change committed between two of its reads.
        through = state.admitted_through
        if previous is not None:
            through = max(through, previous.admitted_through)
        return QueueUpdate(
            state.event_id, state.at, through, state.joined - through, state.ranked
        )
