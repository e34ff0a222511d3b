"""The records eventd serves: events, attendees, registrations.

Immutable records built from database rows, rendered to the camelCase JSON of
the public contract. An event's JSON is encoded once per version and reused by
every read and snapshot. The records made once per registration
(:class:`EventCounts`, :class:`Registration`) are named tuples: a frozen
dataclass's ``__init__`` sets each field through ``object.__setattr__``, five
times the cost, on the path every registration takes.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import orjson

RegistrationStatus = Literal[
    "held", "offered", "confirmed", "waitlisted", "cancelled", "expired"
]
# The states that take a seat or a place in the queue; cancelled and expired are history.
ACTIVE_STATUSES: tuple[RegistrationStatus, ...] = ("held", "offered", "confirmed", "waitlisted")
# The states whose seat is released at expiresAt.
EXPIRING_STATUSES: tuple[RegistrationStatus, ...] = ("held", "offered")
Confirmation = Literal["instant", "email"]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a trailing Z; milliseconds only when present."""
    if moment.tzinfo is not UTC:  # the database's times are in UTC already
        moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec)[:-6] + "Z"  # "+00:00" as "Z"


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`."""
    return datetime.fromisoformat(text)


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventCounts(NamedTuple):
    """An event's counts and version as the database left them after a change."""

    event_id: uuid.UUID
    max_attendees: int
    confirmed_count: int
    waitlist_count: int
    version: int
    updated_at: datetime
    # The version of the event's last edit of its fields (name, time, place…):
    # a version past the actor's own means its fields are stale, not just its counts.
    edited_version: int = 0
    held_count: int = 0  # held and offered: seats taken until confirmed or expired

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EventCounts:
        return cls(
            row["event_id"],
            row["max_attendees"],
            row["confirmed_count"],
            row["waitlist_count"],
            row["version"],
            row["updated_at"],
            row["edited_version"],
            row["held_count"],
        )


@dataclasses.dataclass(frozen=True)
class Event:
    id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    duration_minutes: int
    location: str
    max_attendees: int
    confirmed_count: int
    waitlist_count: int
    version: int
    created_at: datetime
    updated_at: datetime
    timezone: str = "UTC"  # IANA name: how people read its times (eventd.timezones)
    held_count: int = 0  # held and offered registrations: seats taken, not yet confirmed
    hold_minutes: float = 15.0
    offer_minutes: float = 0.0  # 0: a freed seat is confirmed at once
    confirmation: Confirmation = "instant"
    # When its next hold or offer expires, as last read from the database (not
    # in its JSON): its actor arms a timer for it on hydration.
    next_expiry: datetime | None = None
    # People let in at the door: only ever rises (a later cancellation does not undo
    # an entry), so of two accounts of it the larger is the newer.
    checked_in_count: int = 0
    # Before it registrations are refused; admission: a queue admits them (both or neither).
    sales_start_at: datetime | None = None
    admission_rate_per_minute: int | None = None
    admission_token_minutes: float | None = None

    COLUMNS = (
        "id, name, description, starts_at, duration_minutes, location, max_attendees, "
        "confirmed_count, waitlist_count, version, created_at, updated_at, timezone, "
        "held_count, hold_minutes, offer_minutes, confirmation, checked_in_count, "
        "sales_start_at, admission_rate_per_minute, admission_token_minutes"
    )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)
                      if f.name != "next_expiry" or "next_expiry" in row})

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def available_spots(self) -> int:
        return self.max_attendees - self.confirmed_count - self.held_count

    def with_counts(self, counts: EventCounts) -> Event:
        """This event with newer counts; older news is ignored."""
        if counts.version <= self.version:
            return self
        return self.at_counts(counts)

    def at_counts(self, counts: EventCounts) -> Event:
        """This event's fields with exactly these counts and version, older or not.

        Made once per registration, so the fields are copied, not run through
        ``__init__`` again as ``dataclasses.replace`` would (0.7 µs, not 4.7).
        The cached ``json_bytes`` is the old version's and is left behind.
        """
        fresh = object.__new__(type(self))
        state = fresh.__dict__
        state.update(self.__dict__)
        state.pop("json_bytes", None)
        state["max_attendees"] = counts.max_attendees
        state["confirmed_count"] = counts.confirmed_count
        state["waitlist_count"] = counts.waitlist_count
        state["held_count"] = counts.held_count
        state["version"] = counts.version
        state["updated_at"] = counts.updated_at
        return fresh

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "description": self.description,
            "date": format_time(self.starts_at),
            "durationMinutes": self.duration_minutes,
            "endsAt": format_time(self.ends_at),
            "location": self.location,
            "maxAttendees": self.max_attendees,
            "registeredCount": self.confirmed_count,
            "availableSpots": self.available_spots,
            "waitlistCount": self.waitlist_count,
            "version": self.version,
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
            "timezone": self.timezone,
            "heldCount": self.held_count,
            "holdMinutes": self.hold_minutes,
            "offerMinutes": self.offer_minutes,
            "confirmation": self.confirmation,
            "checkedInCount": self.checked_in_count,
            "salesStartAt": format_time(self.sales_start_at) if self.sales_start_at else None,
            "admission": self.admission_json(),
        }

    def admission_json(self) -> dict[str, Any] | None:
        if self.admission_rate_per_minute is None:
            return None
        return {
            "ratePerMinute": self.admission_rate_per_minute,
            "tokenMinutes": self.admission_token_minutes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of :meth:`to_json` (for events that arrive from another daemon)."""
        return cls(
            id=uuid.UUID(data["id"]),
            name=data["name"],
            description=data["description"],
            starts_at=parse_time(data["date"]),
            duration_minutes=data["durationMinutes"],
            location=data["location"],
            max_attendees=data["maxAttendees"],
            confirmed_count=data["registeredCount"],
            waitlist_count=data["waitlistCount"],
            version=data["version"],
            created_at=parse_time(data["createdAt"]),
            updated_at=parse_time(data["updatedAt"]),
            # JSON cached or relayed by a daemon from before time zones has none.
            timezone=data.get("timezone", "UTC"),
            # Likewise for the registration flow's fields.
            held_count=data.get("heldCount", 0),
            hold_minutes=data.get("holdMinutes", 15.0),
            offer_minutes=data.get("offerMinutes", 0.0),
            confirmation=data.get("confirmation", "instant"),
            checked_in_count=data.get("checkedInCount", 0),  # likewise, before check-in
            # ... nor sales and admission settings.
            sales_start_at=parse_time(data["salesStartAt"]) if data.get("salesStartAt") else None,
            admission_rate_per_minute=(data.get("admission") or {}).get("ratePerMinute"),
            admission_token_minutes=(data.get("admission") or {}).get("tokenMinutes"),
        )

    @functools.cached_property
    def json_bytes(self) -> bytes:
        # Copied at its exact size: orjson's result keeps the buffer it was written
        # into (~8 KiB for ~400 bytes), and a live event keeps this while it is live.
        return bytes(memoryview(orjson.dumps(self.to_json())))

    def summary_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "date": format_time(self.starts_at),
            "location": self.location,
        }


@dataclasses.dataclass(frozen=True)
class Attendee:
    id: uuid.UUID
    name: str
    email: str
    created_at: datetime

    COLUMNS = "id, name, email, created_at"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Attendee:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "email": self.email,
            "createdAt": format_time(self.created_at),
        }


class Registration(NamedTuple):
    id: uuid.UUID
    event_id: uuid.UUID
    attendee_id: uuid.UUID
    status: RegistrationStatus
    waitlist_position: int | None
    created_at: datetime
    expires_at: datetime | None = None  # while held or offered
    updated_at: datetime | None = None  # None: not changed since created_at
    checked_in_at: datetime | None = None
    # Only on the answer to the request that made it, and never in its JSON:
    # the secret the HTTP layer answers once as manageToken.
    manage_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        expires_at = self.expires_at if self.status in EXPIRING_STATUSES else None
        return {
            "id": str(self.id),
            "eventId": str(self.event_id),
            "attendeeId": str(self.attendee_id),
            "status": self.status,
            "waitlistPosition": self.waitlist_position,
            "expiresAt": format_time(expires_at) if expires_at is not None else None,
            "checkedInAt": (
                format_time(self.checked_in_at) if self.checked_in_at is not None else None
            ),
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at or self.created_at),
        }
