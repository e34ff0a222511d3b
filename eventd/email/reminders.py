"""Reminder timers: one trio timer per event whose reminder moment is ahead.

The moment is ``reminders.before_hours`` before the event's start. Timers run
on trio's clock (tests drive them with ``MockClock``) and are kept by watching
the hub: a change to an event with confirmed registrations arms its timer, a
new date re-arms it, deletion drops it. At start the daemon arms every event
with reminders still owed, and one whose moment passed while the daemon was
down fires at once. Firing is a write (``SendReminders``) that marks and
queues in one statement, so a reminder goes out once, also with two daemons.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import trio

from eventd.errors import EventdError
from eventd.model import utc_now
from eventd.realtime.changes import Change

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0

Fire = Callable[[uuid.UUID], Awaitable[int]]


class Reminders:
    def __init__(
        self, fire: Fire, before: timedelta, now: Callable[[], datetime] = utc_now
    ) -> None:
        self._fire = fire
        self._before = before
        self._now = now
        self._timers: dict[uuid.UUID, tuple[datetime, trio.CancelScope]] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    @property
    def armed(self) -> dict[uuid.UUID, datetime]:
        """Event id -> the start its timer was armed for."""
        return {event_id: start for event_id, (start, _) in self._timers.items()}

    def arm(self, event_id: uuid.UUID, starts_at: datetime, *, catch_up: bool = False) -> None:
        """Make sure a timer fires at ``starts_at - before``.

        A moment already past fires at once only when catching up after a
        start; otherwise registrations confirmed after it get no reminder.
        """
        current = self._timers.get(event_id)
        if current is not None and current[0] == starts_at:
            return
        self.disarm(event_id)
        delay = (starts_at - self._before - self._now()).total_seconds()
        if delay <= 0 and not catch_up:
            return
        assert self._nursery is not None, "Reminders.run() is not running"
        scope = trio.CancelScope()
        self._timers[event_id] = (starts_at, scope)
        self._nursery.start_soon(self._timer, event_id, max(0.0, delay), scope)

    def disarm(self, event_id: uuid.UUID) -> None:
        timer = self._timers.pop(event_id, None)
        if timer is not None:
            timer[1].cancel()

    async def _timer(self, event_id: uuid.UUID, delay: float, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(delay)
            while True:
                try:
                    queued = await self._fire(event_id)
                    break
                except EventdError as exc:  # the database is away: try again
                    log.warning("reminders for event %s not sent yet: %s", event_id, exc.detail)
                    await trio.sleep(RETRY_SECONDS)
            if queued:
                log.info("queued %d reminder(s) for event %s", queued, event_id)
            if self._timers.get(event_id, (None, None))[1] is scope:
                del self._timers[event_id]

    def on_change(self, change: Change) -> None:
        """A hub listener: keep the timers in step with the events."""
        if change.type == "eventDeleted":
            self.disarm(change.event.id)
        elif change.event.confirmed_count > 0 or change.event.id in self._timers:
            self.arm(change.event.id, change.event.starts_at)
