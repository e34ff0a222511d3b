"""The hub: who follows which event, and handing each change to them.

Actors call :meth:`Hub.publish` and never wait: the hub puts the change into
each interested connection's :class:`~eventd.realtime.outbox.Outbox` without
blocking, and the fan-out (eventd.http.fanout) writes it to the sockets, framed
once for all of them. A connection that falls too far behind is told to
close; nobody else slows down.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from eventd.realtime.changes import Change
from eventd.realtime.queue_updates import QueueUpdate


class Subscriber:
    """What the hub needs of a connection: a non-blocking put."""

    __slots__ = ()

    def put_nowait(self, change: Change) -> None:
        raise NotImplementedError

    def put_state_nowait(self, update: QueueUpdate) -> None:
        """A queueUpdate: a state, which replaces any queued one."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def close_nowait(self, code: int) -> None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class HubStatistics:
    connections: int  # subscribers now, each counted once
    watched_events: int  # events with at least one one-event subscriber
    dropped_slow_clients: int  # since start: subscribers closed for falling behind


class Hub:
    def __init__(self) -> None:
        self._everything: set[Subscriber] = set()
        self._by_event: dict[uuid.UUID, set[Subscriber]] = {}
        self._closing_code: int | None = None
        self._listeners: list[Callable[[Change], None]] = []
        self._dropped_slow_clients = 0
        # The last queueUpdate of each watched event with a queue: a new subscriber's first.
        self._states: dict[uuid.UUID, QueueUpdate] = {}

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """Something inside the daemon (reminder timers) that follows every change."""
        self._listeners.append(listener)

    def publish(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)
        watchers = self._by_event.get(change.event.id)
        if watchers is None and not self._everything:
            return  # nobody is watching: most changes in a rush of many events
        for group in (self._everything, watchers or ()):
            for subscriber in tuple(group):
                if subscriber.closed:  # closing already (shutdown): not this change's doing
                    continue
                subscriber.put_nowait(change)
                if subscriber.closed:  # it fell too far behind: it hears nothing more
                    self.unsubscribe(subscriber)
                    self._dropped_slow_clients += 1

    def publish_state(self, update: QueueUpdate) -> None:
        """An event's queue state to its stream's subscribers here; kept as the current one.

        Not to the all-events streams: a queueUpdate belongs to the event's own stream.
        """
        watchers = self._by_event.get(update.event_id)
        if watchers is None:
            self._states.pop(update.event_id, None)
            return
        self._states[update.event_id] = update
        for subscriber in tuple(watchers):
            if not subscriber.closed:
                subscriber.put_state_nowait(update)

    def current_state(self, event_id: uuid.UUID) -> QueueUpdate | None:
        """The event's last queueUpdate, while its stream has subscribers here."""
        return self._states.get(event_id)

    def watched_events(self) -> list[uuid.UUID]:
        """The events whose own stream has a subscriber here."""
        return list(self._by_event)

    def add_subscriber(self, subscriber: Subscriber, event_id: uuid.UUID | None = None) -> None:
        """Deliver every change (``event_id`` None) or one event's, until :meth:`unsubscribe`."""
        if self._closing_code is not None:  # opened during shutdown: closed at once
            subscriber.close_nowait(self._closing_code)
        group = self._everything if event_id is None else self._by_event.setdefault(event_id, set())
        group.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Deliver nothing more to ``subscriber``; it may already be gone."""
        self._everything.discard(subscriber)
        for event_id, group in list(self._by_event.items()):
            group.discard(subscriber)
            if not group:
                del self._by_event[event_id]
                self._states.pop(event_id, None)

    def is_watched(self, event_id: uuid.UUID) -> bool:
        return event_id in self._by_event

    def is_followed(self, event_id: uuid.UUID) -> bool:
        """Would a change of this event reach anyone here (its stream, or an all-events one)?"""
        return bool(self._everything) or event_id in self._by_event

    def close_all(self, code: int) -> None:
        """Ask every connection, and any opened from now on, to close (1001 on stop)."""
        self._closing_code = code
        for subscriber in self._all():
            subscriber.close_nowait(code)

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            connections=len(self._all()),
            watched_events=len(self._by_event),
            dropped_slow_clients=self._dropped_slow_clients,
        )

    def _all(self) -> set[Subscriber]:
        everyone = set(self._everything)
        for group in self._by_event.values():
            everyone |= group
        return everyone
