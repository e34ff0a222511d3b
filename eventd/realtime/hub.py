"""The hub between event actors and whoever follows their changes.

Actors call :meth:`Hub.publish` and never wait: every subscriber takes a
change synchronously and must not block (a WebSocket connection queues it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

from eventd.model import Event

ChangeType = Literal["newEvent", "eventUpdated", "eventDeleted", "eventCapacityUpdate"]


@dataclasses.dataclass(frozen=True)
class Change:
    type: ChangeType
    event: Event  # the event as of this change
    seq: int  # the event's version after the change
    at: datetime


Subscriber = Callable[[Change], None]


class Hub:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def publish(self, change: Change) -> None:
        for subscriber in list(self._subscribers):
            subscriber(change)

    @contextmanager
    def subscribe(self, subscriber: Subscriber) -> Iterator[None]:
        self._subscribers.append(subscriber)
        try:
            yield
        finally:
            self._subscribers.remove(subscriber)
