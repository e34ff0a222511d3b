"""A change of one event, as its streams carry it: the message, its JSON and its frame.

An actor makes one :class:`Change` per change it commits; the hub hands that
same object to every connection that follows the event, so its JSON text and
its WebSocket frame are built once, however many clients receive it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

import orjson

from eventd.model import Event, format_time, utc_now
from eventd.realtime.capacity import capacity_warning
from eventd.realtime.frames import text_frame

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
                "heldCount": event.held_count,
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
