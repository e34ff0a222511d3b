"""Expiries: the timers of the events' holds and offers, one per event, in one task.

An event's actor says when its next hold or offer expires
(:meth:`Expiries.arm`, from the database's answers); at that moment the
supervisor sends the actor an ``Expire``, which takes the registration path
like every other change: the writer runs one guarded statement that expires
what is due and offers the freed seats, and the actor adopts the counts and
publishes them. A timer per event would be a task per event with a pending
hold; here it is a heap entry, and one task sleeps until the earliest.

Timers run on trio's clock (tests drive them with ``MockClock``); a moment
given as a wall-clock time is turned into trio's clock when armed. A timer
that fired is not fired again for ``REFIRE_SECONDS``: if the database's clock
is a little behind ours, its answer names the same moment again, and the
actor asks again a moment later rather than at once.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Callable
from datetime import datetime

import trio

from eventd.model import utc_now

REFIRE_SECONDS = 0.05

Fire = Callable[[uuid.UUID], None]  # the event's timer is due: send its actor an Expire


class Expiries:
    def __init__(self, fire: Fire, now: Callable[[], datetime] = utc_now) -> None:
        self._fire = fire
        self._now = now
        self._due: dict[uuid.UUID, float] = {}  # event id -> its deadline on trio's clock
        self._heap: list[tuple[float, uuid.UUID]] = []  # may hold stale entries
        self._fired: dict[uuid.UUID, float] = {}  # when each timer last fired
        self._scope: trio.CancelScope | None = None  # the task's sleep, until the earliest

    @property
    def armed(self) -> dict[uuid.UUID, float]:
        """Event id -> when its timer fires (trio's clock)."""
        return dict(self._due)

    def arm(self, event_id: uuid.UUID, at: datetime | None, *, earlier_only: bool = False) -> None:
        """Fire the event's timer at ``at`` (None: disarm it).

        ``earlier_only``: keep an earlier moment already armed (news from a
        rescan, which may be older than the actor's own).
        """
        if at is None:
            self._due.pop(event_id, None)
            self._fired.pop(event_id, None)
            return
        now = trio.current_time()
        deadline = now + max(0.0, (at - self._now()).total_seconds())
        fired = self._fired.get(event_id)
        if fired is not None:
            if fired + REFIRE_SECONDS > deadline:
                deadline = fired + REFIRE_SECONDS
            elif fired + REFIRE_SECONDS <= now:
                del self._fired[event_id]
        self.arm_at(event_id, deadline, earlier_only=earlier_only)

    def arm_at(self, event_id: uuid.UUID, deadline: float, *, earlier_only: bool = False) -> None:
        """Fire the event's timer at ``deadline`` on trio's clock."""
        current = self._due.get(event_id)
        if current is not None and (current == deadline or (earlier_only and current < deadline)):
            return
        self._due[event_id] = deadline
        heapq.heappush(self._heap, (deadline, event_id))
        if self._scope is not None and deadline < self._scope.deadline:
            self._scope.deadline = deadline

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            with trio.CancelScope(deadline=self._earliest()) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            self._fire_due(trio.current_time())

    def _earliest(self) -> float:
        while self._heap:
            deadline, event_id = self._heap[0]
            if self._due.get(event_id) == deadline:
                return deadline
            heapq.heappop(self._heap)  # re-armed or disarmed since
        return math.inf

    def _fire_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            deadline, event_id = heapq.heappop(self._heap)
            if self._due.get(event_id) != deadline:
                continue
            del self._due[event_id]
            self._fired[event_id] = now
            self._fire(event_id)
