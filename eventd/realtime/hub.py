"""The hub between event actors and the WebSocket connections that follow them.

Actors call :meth:`Hub.publish` and never wait: the hub puts the change into
each interested connection's :class:`~eventd.realtime.outbox.Outbox` without
blocking, and the fan-out (eventd.http.fanout) writes it to the sockets, framed
once for all of them. A connection that falls too far behind is told to
close; nobody else slows down.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal

import orjson

from eventd.model import Event, format_time, utc_now

ChangeType = Literal["newEvent", "eventUpdated", "eventDeleted", "eventCapacityUpdate"]
MessageType = ChangeType | Literal["snapshot"]


@dataclasses.dataclass(frozen=True)
class Change:
    """One message of an event's stream: what changed, as of which version."""

    type: MessageType
    event: Event  # the event as of this change
    seq: int  # the event's version after the change
    at: datetime

    @classmethod
    def snapshot(cls, event: Event) -> Change:
        return cls("snapshot", event, event.version, utc_now())

    def encode(self, almost_full_ratio: float) -> str:
        """The JSON text of the message, encoded once however many clients receive it."""
        cached: tuple[float, str] | None = self.__dict__.get("_encoded")
        if cached is None or cached[0] != almost_full_ratio:
            cached = (almost_full_ratio, self._render(almost_full_ratio))
            object.__setattr__(self, "_encoded", cached)
        return cached[1]

    def frame(self, almost_full_ratio: float) -> bytes:
        """The whole WebSocket text frame, header and payload, built once for every client.

        A server's frames are unmasked (RFC 6455 §5.1), so these bytes are the
        same on every connection and can be written to each as they are.
        """
        cached: tuple[float, bytes] | None = self.__dict__.get("_frame")
        if cached is None or cached[0] != almost_full_ratio:
            cached = (almost_full_ratio, text_frame(self.encode(almost_full_ratio)))
            object.__setattr__(self, "_frame", cached)
        return cached[1]

    def _render(self, almost_full_ratio: float) -> str:
        event = self.event
        data: dict[str, Any]
        if self.type == "eventDeleted":
            data = {"id": str(event.id)}
        elif self.type == "eventCapacityUpdate":
            data = {
                "maxAttendees": event.max_attendees,
                "registeredCount": event.confirmed_count,
                "availableSpots": event.available_spots,
                "waitlistCount": event.waitlist_count,
                "warning": capacity_warning(event, almost_full_ratio),
            }
        else:
            data = event.to_json()
        return orjson.dumps(
            {
                "type": self.type,
                "eventId": str(event.id),
                "seq": self.seq,
                "at": format_time(self.at),
                "data": data,
            }
        ).decode()


def text_frame(text: str) -> bytes:
    """One final, unmasked WebSocket text frame carrying ``text`` (RFC 6455 §5.2)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


def capacity_warning(event: Event, almost_full_ratio: float) -> str | None:
    """ "full" at no spots; "almostFull" at or under the ratio (at least one spot)."""
    available = event.available_spots
    if available <= 0:
        return "full"
    # The ratio as written (0.29, not 0.28999…), so "≤ ratio × max" holds exactly.
    threshold: Fraction = Fraction(repr(almost_full_ratio)) * event.max_attendees
    if available <= max(Fraction(1), threshold):
        return "almostFull"
    return None


class Subscriber:
    """What the hub needs of a connection: a non-blocking put."""

    __slots__ = ()

    def put_nowait(self, change: Change) -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def close_nowait(self, code: int) -> None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class HubStatistics:
    connections: int
    watched_events: int
    dropped_slow_clients: int


class Hub:
    def __init__(self) -> None:
        self._everything: set[Subscriber] = set()
        self._by_event: dict[uuid.UUID, set[Subscriber]] = {}
        self._closing_code: int | None = None
        self._listeners: list[Callable[[Change], None]] = []
        self.dropped_slow_clients = 0

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
                    self.dropped_slow_clients += 1

    @contextmanager
    def subscribe(
        self, subscriber: Subscriber, event_id: uuid.UUID | None = None
    ) -> Iterator[None]:
        """Deliver every change (``event_id`` None) or one event's, for the block."""
        self.add_subscriber(subscriber, event_id)
        try:
            yield
        finally:
            self.unsubscribe(subscriber)

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

    def _all(self) -> set[Subscriber]:
        everyone = set(self._everything)
        for group in self._by_event.values():
            everyone |= group
        return everyone

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            connections=len(self._all()),
            watched_events=len(self._by_event),
            dropped_slow_clients=self.dropped_slow_clients,
        )
